package main

import (
	"bytes"
	"crypto/sha256"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

func main() {
	check := flag.Bool("check", false, "do not write: fail if THIRD_PARTY_LICENSES or the Buildroot recipe is out of date")
	repo := flag.String("repo", ".", "the gardend checkout")
	flag.Parse()
	if err := run(*repo, *check); err != nil {
		fmt.Fprintln(os.Stderr, "licenses:", err)
		os.Exit(1)
	}
}

func run(repo string, check bool) error {
	mods, err := collect(repo)
	if err != nil {
		return err
	}
	if bad := refused(mods); len(bad) > 0 {
		return fmt.Errorf("licences refused:\n  %s", strings.Join(bad, "\n  "))
	}
	root, err := goroot(repo)
	if err != nil {
		return err
	}
	text, err := render(mods, root)
	if err != nil {
		return err
	}
	out := filepath.Join(repo, "THIRD_PARTY_LICENSES")
	mk := filepath.Join(repo, "buildroot/package/gardend/gardend.mk")
	if err := checkRecipe(mk, mods); err != nil {
		return err
	}
	own, err := os.ReadFile(filepath.Join(repo, "LICENSE"))
	if err != nil {
		return err
	}
	hashFile := filepath.Join(repo, "buildroot/package/gardend/gardend.hash")
	hashes := hashText(own, text)
	if check {
		for path, want := range map[string][]byte{out: text, hashFile: hashes} {
			old, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			if !bytes.Equal(old, want) {
				return fmt.Errorf("%s is out of date: run go run ./scripts/licenses", path)
			}
		}
		return nil
	}
	fmt.Printf("%d modules: %s\n", len(mods), strings.Join(licenseSet(mods), ", "))
	if err := os.WriteFile(out, text, 0o644); err != nil {
		return err
	}
	return os.WriteFile(hashFile, hashes, 0o644)
}

// hashText is the Buildroot hash file for the recipe's licence files, which
// legal-info checks.
func hashText(license, thirdParty []byte) []byte {
	return fmt.Appendf(nil, "# Locally calculated (go run ./scripts/licenses)\nsha256  %x  LICENSE\nsha256  %x  THIRD_PARTY_LICENSES\n",
		sha256.Sum256(license), sha256.Sum256(thirdParty))
}

// collect lists the linked modules and classifies their licences.
func collect(repo string) ([]*module, error) {
	mods, err := linkedModules(repo)
	if err != nil {
		return nil, err
	}
	for _, m := range mods {
		if err := inspect(m); err != nil {
			return nil, fmt.Errorf("%s: %w", m.Path, err)
		}
	}
	return mods, nil
}

// checkRecipe fails unless the Buildroot recipe's GARDEND_LICENSE line is
// the one the linked modules call for.
func checkRecipe(path string, mods []*module) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	want := mkLicense(mods)
	for _, l := range strings.Split(string(data), "\n") {
		if strings.HasPrefix(l, "GARDEND_LICENSE = ") {
			if l != want {
				return fmt.Errorf("%s has\n  %s\nwant\n  %s", path, l, want)
			}
			return nil
		}
	}
	return fmt.Errorf("%s has no GARDEND_LICENSE line; want\n  %s", path, want)
}
