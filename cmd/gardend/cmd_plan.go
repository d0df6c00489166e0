package main

import (
	"context"
	"fmt"
	"time"

	"gardend/config"
	"gardend/plan"
)

func runPlan(_ context.Context, e *env, args []string) int {
	fs := newFlagSet(e, "plan", "",
		"Predict the passes of a satellite over a ground station with SGP4 and\n"+
			"print them as a contact plan.\n\n"+
			"  --format table   for people (default)\n"+
			"  --format csv     header aos,los,max_elevation_deg,duration_s, UTC RFC 3339\n"+
			"                   (usable as a plan_file as is)\n"+
			"  --format ion     ION lines: a contact +START +STOP FROM TO RATE\n\n"+
			"The elements file's format is detected from its content: a TLE (two\n"+
			"lines, or three with a name; Alpha-5 catalogue numbers accepted) or an\n"+
			"OMM as CelesTrak serves it (JSON, KVN, XML or CSV) holding one element\n"+
			"set. Malformed elements are refused naming the field (and the line) at fault.")
	var elementsFile string
	fs.StringVar(&elementsFile, "elements", "", "orbit elements file: TLE or OMM (JSON, KVN, XML, CSV)")
	fs.StringVar(&elementsFile, "tle", "", "old name of --elements")
	station := fs.String("station", "", "ground station as LAT,LON,ALT (degrees, degrees, metres)")
	minEl := fs.Float64("min-el", 10, "minimum elevation in degrees")
	fromS := fs.String("from", "", "start of the prediction, RFC 3339 (default: now)")
	hours := fs.Float64("hours", 24, "how many hours to predict")
	format := fs.String("format", "table", "table, csv or ion")
	ionNodes := fs.String("ion-nodes", "1,2", "ion: FROM,TO node numbers")
	ionRate := fs.Uint64("ion-rate", 8000, "ion: rate in bytes per second (8000 = 64 kbit/s)")
	if code, ok := parseFlags(e, fs, args); !ok {
		return code
	}
	if fs.NArg() > 0 {
		return usageError(e, fs, "unexpected argument %q", fs.Arg(0))
	}
	if elementsFile == "" || *station == "" {
		return usageError(e, fs, "--elements and --station are required")
	}
	gs, err := config.ParseStation(*station)
	if err != nil {
		return usageError(e, fs, "--station: %v", err)
	}
	st := plan.Station{Lat: gs.Lat, Lon: gs.Lon, AltM: gs.AltM, MinElevation: *minEl}
	from := time.Now().UTC().Truncate(time.Second)
	if *fromS != "" {
		if from, err = time.Parse(time.RFC3339, *fromS); err != nil {
			return usageError(e, fs, "--from: want an RFC 3339 time such as 2026-11-21T12:00:00Z")
		}
	}
	if *hours <= 0 || *hours > 24*31 {
		return usageError(e, fs, "--hours must be in (0, 744]")
	}
	var nodes [2]uint64
	if _, err := fmt.Sscanf(*ionNodes, "%d,%d", &nodes[0], &nodes[1]); err != nil {
		return usageError(e, fs, "--ion-nodes: want FROM,TO")
	}
	orbit, err := plan.LoadOrbit(elementsFile)
	if err != nil {
		fmt.Fprintf(e.stderr, "gardend plan: %v\n", err)
		return exitFailure
	}
	passes, err := orbit.Passes(st, from, time.Duration(*hours*float64(time.Hour)))
	if err != nil {
		fmt.Fprintf(e.stderr, "gardend plan: %v\n", err)
		return exitFailure
	}
	switch *format {
	case "table":
		err = plan.WriteTable(e.stdout, passes)
	case "csv":
		err = plan.WriteCSV(e.stdout, passes)
	case "ion":
		err = plan.WriteION(e.stdout, passes, from, nodes[0], nodes[1], *ionRate)
	default:
		return usageError(e, fs, "--format: want table, csv or ion")
	}
	if err != nil {
		fmt.Fprintf(e.stderr, "gardend plan: %v\n", err)
		return exitFailure
	}
	return exitOK
}
