// Command licenses lists the licence of every module linked into gardend
// (every build flavour and target architecture), refuses any licence that is
// not on the allow-list, and writes THIRD_PARTY_LICENSES with each module's
// licence and notice texts. It reads the module cache (`go mod download`
// fills it), never the network.
//
//	go run ./scripts/licenses          # rewrite THIRD_PARTY_LICENSES
//	go run ./scripts/licenses -check   # fail if it is out of date or a licence is refused
package main

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
)

// allowed are the licences gardend's binary may link: permissive ones, and
// MPL-2.0 (file-level copyleft: the MPL files' source is the vendored
// source, unchanged). No GPL, LGPL or AGPL: gardend is Apache-2.0 and ships
// as one static binary.
var allowed = map[string]bool{
	"Apache-2.0":   true,
	"MIT":          true,
	"BSD-2-Clause": true,
	"BSD-3-Clause": true,
	"ISC":          true,
	"MPL-2.0":      true,
	"CC0-1.0":      true,
	"Unlicense":    true,
}

// flavours are the builds whose linked modules are listed: each GOARCH the
// project ships, with each build tag set.
var (
	arches = []string{"amd64", "arm64", "arm", "riscv64"}
	tags   = []string{"", "pkcs11", "nodht"}
)

// module is one linked module and what its licence files say.
type module struct {
	Path, Version, Dir string
	Licenses           []string // SPDX identifiers found, sorted
	Files              []string // licence and notice files, relative to Dir
}

// licenseFile matches the files that carry a licence; noticeFile those that
// must travel with it.
var (
	licenseFile = regexp.MustCompile(`(?i)^(licen[cs]e|copying|unlicense)([-._].*)?$`)
	noticeFile  = regexp.MustCompile(`(?i)^(notice|patents)(\..*)?$`)
)

// linkedModules runs `go list -deps` on cmd/gardend for every flavour, from
// the module cache (-mod=mod: a vendor/ directory would hide module
// directories), and returns the modules other than gardend itself. A
// module that go.mod replaces with a directory of this repository (the
// inert Prometheus client under shim/) is gardend's own source, under its
// LICENSE, and is not listed.
func linkedModules(repo string) ([]*module, error) {
	seen := map[string]*module{}
	for _, arch := range arches {
		for _, tag := range tags {
			cmd := exec.Command("go", "list", "-mod=mod", "-deps", "-tags", tag,
				"-f", "{{with .Module}}{{if not .Main}}{{.Path}}\t{{.Version}}\t{{.Dir}}\t{{with .Replace}}{{.Path}}{{end}}{{end}}{{end}}", "./cmd/gardend")
			cmd.Dir = repo
			// GOPROXY=off: the module cache is the only source.
			cmd.Env = append(os.Environ(), "GOPROXY=off", "GOFLAGS=-mod=mod", "GOOS=linux", "GOARCH="+arch, "GOARM=7", "CGO_ENABLED=1")
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			out, err := cmd.Output()
			if err != nil {
				return nil, fmt.Errorf("go list (GOARCH=%s tags=%q): %v\n%s", arch, tag, err, stderr.String())
			}
			sc := bufio.NewScanner(bytes.NewReader(out))
			for sc.Scan() {
				f := strings.Split(sc.Text(), "\t")
				if len(f) != 4 || f[0] == "" {
					continue
				}
				if ours, err := inRepo(repo, f[3], f[2]); err != nil {
					return nil, err
				} else if ours {
					continue
				}
				if f[2] == "" {
					return nil, fmt.Errorf("module %s %s is not in the module cache: run go mod download", f[0], f[1])
				}
				seen[f[0]] = &module{Path: f[0], Version: f[1], Dir: f[2]}
			}
		}
	}
	var mods []*module
	for _, m := range seen {
		mods = append(mods, m)
	}
	sort.Slice(mods, func(i, j int) bool { return mods[i].Path < mods[j].Path })
	return mods, nil
}

// inRepo reports whether a module replaced by replacePath, found in dir,
// is a directory of the repository at repo.
func inRepo(repo, replacePath, dir string) (bool, error) {
	if !strings.HasPrefix(replacePath, "./") && !strings.HasPrefix(replacePath, "../") {
		return false, nil
	}
	absRepo, err := filepath.Abs(repo)
	if err != nil {
		return false, err
	}
	rel, err := filepath.Rel(absRepo, dir)
	if err != nil {
		return false, nil
	}
	return rel != ".." && !strings.HasPrefix(rel, "../"), nil
}

// inspect finds m's licence and notice files and classifies the licences.
func inspect(m *module) error {
	ents, err := os.ReadDir(m.Dir)
	if err != nil {
		return err
	}
	found := map[string]bool{}
	for _, e := range ents {
		if e.IsDir() {
			continue
		}
		switch {
		case licenseFile.MatchString(e.Name()):
			data, err := os.ReadFile(filepath.Join(m.Dir, e.Name()))
			if err != nil {
				return err
			}
			for _, id := range classify(string(data)) {
				found[id] = true
			}
			m.Files = append(m.Files, e.Name())
		case noticeFile.MatchString(e.Name()):
			m.Files = append(m.Files, e.Name())
		}
	}
	for id := range found {
		m.Licenses = append(m.Licenses, id)
	}
	sort.Strings(m.Licenses)
	sort.Strings(m.Files)
	return nil
}

var (
	space    = regexp.MustCompile(`\s+`)
	spdxID   = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9.+-]*$`)
	spdxLine = regexp.MustCompile(`SPDX-License-Identifier:\s*([A-Za-z0-9.+() -]+)`)
)

// classify names the licences a licence file's text holds, as SPDX
// identifiers, by phrases each licence's text carries. A text it cannot
// place gives "unknown"; GNU licences are named so that they are refused.
func classify(text string) []string {
	t := strings.ToLower(space.ReplaceAllString(text, " "))
	var ids []string
	has := func(s ...string) bool {
		for _, x := range s {
			if !strings.Contains(t, x) {
				return false
			}
		}
		return true
	}
	// A declared SPDX expression names its licences outright.
	for _, m := range spdxLine.FindAllStringSubmatch(text, -1) {
		for _, id := range strings.Fields(strings.NewReplacer("(", " ", ")", " ").Replace(m[1])) {
			if spdxID.MatchString(id) && id != "OR" && id != "AND" && id != "WITH" {
				ids = append(ids, id)
			}
		}
	}
	mpl := has("mozilla public license") && (has("version 2.0") || has("v. 2.0"))
	if mpl {
		ids = append(ids, "MPL-2.0")
	}
	if has("apache license", "version 2.0") {
		ids = append(ids, "Apache-2.0")
	}
	if has("permission is hereby granted, free of charge, to any person obtaining a copy") {
		ids = append(ids, "MIT")
	}
	if has("redistribution and use in source and binary forms") {
		if has("neither the name") || has("names of its contributors may") || has("name of the copyright holder nor") {
			ids = append(ids, "BSD-3-Clause")
		} else {
			ids = append(ids, "BSD-2-Clause")
		}
	}
	if has("permission to use, copy, modify, and") && has("distribute this software for any purpose with or without fee") {
		ids = append(ids, "ISC")
	}
	if has("this is free and unencumbered software released into the public domain") {
		ids = append(ids, "Unlicense")
	}
	if has("cc0 1.0 universal") {
		ids = append(ids, "CC0-1.0")
	}
	// MPL-2.0's text names the GNU licences as "Secondary Licenses": only a
	// text that is not MPL counts as GNU.
	if !mpl {
		switch {
		case has("gnu affero general public license"):
			ids = append(ids, "AGPL")
		case has("gnu lesser general public license") || has("gnu library general public license"):
			ids = append(ids, "LGPL")
		case has("gnu general public license"):
			ids = append(ids, "GPL")
		}
	}
	if len(ids) == 0 {
		return []string{"unknown"}
	}
	sort.Strings(ids)
	return slices.Compact(ids)
}

// refused lists each module whose licences are not all allowed, or that
// has no licence file at all.
func refused(mods []*module) []string {
	var bad []string
	for _, m := range mods {
		if len(m.Licenses) == 0 {
			bad = append(bad, m.Path+": no licence file")
			continue
		}
		for _, id := range m.Licenses {
			if !allowed[id] {
				bad = append(bad, fmt.Sprintf("%s %s: %s is not on the allow-list", m.Path, m.Version, id))
			}
		}
	}
	return bad
}

// licenseSet is every licence the linked modules carry, sorted.
func licenseSet(mods []*module) []string {
	set := map[string]bool{}
	for _, m := range mods {
		for _, id := range m.Licenses {
			set[id] = true
		}
	}
	var ids []string
	for id := range set {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	return ids
}

// render writes THIRD_PARTY_LICENSES: a summary table, then each module's
// licence and notice texts. The Go runtime and standard library are
// BSD-3-Clause; their text comes from goroot.
func render(mods []*module, goroot string) ([]byte, error) {
	var b bytes.Buffer
	fmt.Fprintf(&b, "Third-party licences of the gardend binary\n")
	fmt.Fprintf(&b, "==========================================\n\n")
	fmt.Fprintf(&b, "gardend itself is under the Apache License 2.0 (LICENSE). The binary links\n")
	fmt.Fprintf(&b, "the Go runtime and standard library and the modules below (every build\n")
	fmt.Fprintf(&b, "flavour: default, pkcs11, nodht; GOARCH %s). A module with several\n", strings.Join(arches, ", "))
	fmt.Fprintf(&b, "licences lists every one its licence files name.\n")
	fmt.Fprintf(&b, "Generated by `go run ./scripts/licenses` from the module cache; do not edit.\n")
	fmt.Fprintf(&b, "Source of every module is in vendor/ after `make vendor` (MPL-2.0 files\n")
	fmt.Fprintf(&b, "are unmodified).\n\n")
	fmt.Fprintf(&b, "Licences of the linked modules: %s\n\n", strings.Join(licenseSet(mods), ", "))
	w := 0
	for _, m := range mods {
		w = max(w, len(m.Path))
	}
	fmt.Fprintf(&b, "%-*s  %s\n", w, "Go standard library and runtime", "BSD-3-Clause")
	for _, m := range mods {
		fmt.Fprintf(&b, "%-*s  %s %s\n", w, m.Path, m.Version, strings.Join(m.Licenses, ", "))
	}
	section := func(title, path string) error {
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		fmt.Fprintf(&b, "\n\n%s\n%s\n\n%s", title, strings.Repeat("-", len(title)), strings.TrimRight(string(data), "\n \t"))
		fmt.Fprintln(&b)
		return nil
	}
	if err := section("Go standard library and runtime: LICENSE", filepath.Join(goroot, "LICENSE")); err != nil {
		return nil, err
	}
	for _, m := range mods {
		for _, f := range m.Files {
			if err := section(fmt.Sprintf("%s %s: %s", m.Path, m.Version, f), filepath.Join(m.Dir, f)); err != nil {
				return nil, err
			}
		}
	}
	return b.Bytes(), nil
}

// goroot is the Go installation's root, whose LICENSE covers the runtime.
func goroot(repo string) (string, error) {
	cmd := exec.Command("go", "env", "GOROOT")
	cmd.Dir = repo
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("go env GOROOT: %v", err)
	}
	return strings.TrimSpace(string(out)), nil
}

// mkLicense is the GARDEND_LICENSE line the Buildroot recipe must carry.
func mkLicense(mods []*module) string {
	return "GARDEND_LICENSE = Apache-2.0 (gardend), " + strings.Join(licenseSet(mods), ", ") + " (vendored Go modules)"
}
