package main

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// TestThirdPartyLicensesCurrent lists the modules linked into gardend from
// the module cache (offline), fails if one brings a licence off the
// allow-list, and fails if THIRD_PARTY_LICENSES or the Buildroot recipe's
// GARDEND_LICENSE does not match what is linked.
func TestThirdPartyLicensesCurrent(t *testing.T) {
	repo, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	mods, err := collect(repo)
	if err != nil {
		t.Fatal(err)
	}
	if len(mods) < 20 {
		t.Fatalf("only %d linked modules listed: go list returned too little to be believed", len(mods))
	}
	for _, m := range mods {
		if m.Path == "github.com/libp2p/go-libp2p" && !slices.Contains(m.Licenses, "MIT") {
			t.Errorf("go-libp2p classified as %v, want MIT", m.Licenses)
		}
	}
	if bad := refused(mods); len(bad) > 0 {
		t.Fatalf("licences refused:\n  %s", strings.Join(bad, "\n  "))
	}
	if err := run(repo, true); err != nil {
		t.Fatal(err)
	}
}

func TestClassify(t *testing.T) {
	cases := []struct {
		name, text string
		want       []string
	}{
		{"mit", "Permission is hereby granted, free of charge, to any person obtaining a copy\nof this software", []string{"MIT"}},
		{"bsd3", "Redistribution and use in source and binary forms, with or without\nmodification, are permitted ... Neither the name of Google Inc. nor", []string{"BSD-3-Clause"}},
		{"bsd2", "Redistribution and use in source and binary forms, with or without modification, are permitted provided that", []string{"BSD-2-Clause"}},
		{"isc", "Permission to use, copy, modify, and distribute this software for any purpose with or without fee is hereby granted", []string{"ISC"}},
		{"apache", "Licensed under the Apache License, Version 2.0 (the \"License\")", []string{"Apache-2.0"}},
		{"spdx", "dual-licensed\n<!--- SPDX-License-Identifier: Apache-2.0 OR MIT -->", []string{"Apache-2.0", "MIT"}},
		{"mpl names gnu as secondary", "Mozilla Public License Version 2.0 ... \"Secondary License\" means either the GNU General Public License, Version 2.0", []string{"MPL-2.0"}},
		{"gpl", "GNU GENERAL PUBLIC LICENSE\nVersion 3, 29 June 2007", []string{"GPL"}},
		{"lgpl", "GNU LESSER GENERAL PUBLIC LICENSE Version 2.1", []string{"LGPL"}},
		{"agpl", "GNU AFFERO GENERAL PUBLIC LICENSE", []string{"AGPL"}},
		{"spdx gpl", "SPDX-License-Identifier: GPL-2.0-only", []string{"GPL-2.0-only"}},
		{"unknown", "All rights reserved.", []string{"unknown"}},
	}
	for _, c := range cases {
		if got := classify(c.text); !slices.Equal(got, c.want) {
			t.Errorf("%s: classify = %v, want %v", c.name, got, c.want)
		}
	}
	// Debian's own copies of the GNU licences, when present, are refused.
	for _, f := range []string{"GPL-2", "GPL-3", "LGPL-2.1", "LGPL-3"} {
		data, err := os.ReadFile("/usr/share/common-licenses/" + f)
		if err != nil {
			continue
		}
		for _, id := range classify(string(data)) {
			if allowed[id] {
				t.Errorf("%s classified as allowed %s", f, id)
			}
		}
	}
}

func TestRefused(t *testing.T) {
	mods := []*module{
		{Path: "example.com/ok", Licenses: []string{"MIT"}},
		{Path: "example.com/gpl", Version: "v1.0.0", Licenses: []string{"GPL", "MIT"}},
		{Path: "example.com/none"},
		{Path: "example.com/odd", Licenses: []string{"unknown"}},
	}
	bad := refused(mods)
	if len(bad) != 3 {
		t.Fatalf("refused %d modules, want 3: %v", len(bad), bad)
	}
	for i, want := range []string{"example.com/gpl v1.0.0: GPL", "example.com/none: no licence", "example.com/odd"} {
		if !strings.HasPrefix(bad[i], want) {
			t.Errorf("refusal %d = %q, want prefix %q", i, bad[i], want)
		}
	}
}

// TestInRepo: a module replaced by a directory of the repository is
// gardend's own; one replaced by another module, or by a directory outside
// the repository, is a third party's.
func TestInRepo(t *testing.T) {
	repo := t.TempDir()
	for _, c := range []struct {
		replace, dir string
		want         bool
	}{
		{"./shim/client_golang", filepath.Join(repo, "shim/client_golang"), true},
		{"../elsewhere", filepath.Join(filepath.Dir(repo), "elsewhere"), false},
		{"github.com/someone/fork", filepath.Join(repo, "x"), false},
		{"", "/root/go/pkg/mod/github.com/x/y@v1.0.0", false},
	} {
		got, err := inRepo(repo, c.replace, c.dir)
		if err != nil || got != c.want {
			t.Errorf("inRepo(%q, %q) = %v, %v; want %v", c.replace, c.dir, got, err, c.want)
		}
	}
}
