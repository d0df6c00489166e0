package main

import (
	"context"
	"fmt"
	"strings"
	"time"

	"gardend/config"
	"gardend/plan"
)

func runPlan(_ context.Context, e *env, args []string) int {
	fs := newFlagSet(e, "plan", "",
		"Predict the passes of a satellite over ground stations with SGP4 and\n"+
			"print them as a contact plan.\n\n"+
			"  --station LAT,LON,ALT        one unnamed station (degrees, degrees, metres)\n"+
			"  --station NAME=LAT,LON,ALT   a named station; give --station once per station\n"+
			"                               (e.g. --station svalbard=78.23,15.39,450\n"+
			"                                     --station kiruna=67.86,20.96,400):\n"+
			"                               passes of all stations are printed together\n"+
			"                               by AOS, each with its station\n\n"+
			"  --format table   for people (default); a STATION column with named stations\n"+
			"  --format csv     header aos,los,max_elevation_deg,duration_s, UTC RFC 3339,\n"+
			"                   and a last station column with named stations\n"+
			"                   (usable as a plan_file as is)\n"+
			"  --format ion     ION lines: a contact +START +STOP FROM TO RATE; named\n"+
			"                   stations, in name order, are nodes TO, TO+1, …\n\n"+
			"The elements file's format is detected from its content: a TLE (two\n"+
			"lines, or three with a name; Alpha-5 catalogue numbers accepted) or an\n"+
			"OMM as CelesTrak serves it (JSON, KVN, XML or CSV) holding one element\n"+
			"set. Malformed elements are refused naming the field (and the line) at fault.")
	var elementsFile string
	fs.StringVar(&elementsFile, "elements", "", "orbit elements file: TLE or OMM (JSON, KVN, XML, CSV)")
	fs.StringVar(&elementsFile, "tle", "", "old name of --elements")
	var stations stationFlags
	fs.Var(&stations, "station", "a ground station at `[NAME=]LAT,LON,ALT` (degrees, degrees, metres); repeat, each NAMEd, for several stations")
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
	if elementsFile == "" || len(stations) == 0 {
		return usageError(e, fs, "--elements and --station are required")
	}
	var sts []plan.Station
	seen := map[string]bool{}
	for _, arg := range stations {
		name, loc, named := strings.Cut(arg, "=")
		if !named {
			name, loc = "", arg
		}
		if named {
			if err := plan.CheckStationName(name); err != nil {
				return usageError(e, fs, "--station %s: %v", arg, err)
			}
		} else if len(stations) > 1 {
			return usageError(e, fs, "--station %s: with several stations, name each: NAME=LAT,LON,ALT", arg)
		}
		if seen[name] {
			return usageError(e, fs, "--station: %q given twice", name)
		}
		seen[name] = true
		gs, err := config.ParseStation(loc)
		if err != nil {
			return usageError(e, fs, "--station %s: %v", arg, err)
		}
		sts = append(sts, plan.Station{Name: name, Lat: gs.Lat, Lon: gs.Lon, AltM: gs.AltM, MinElevation: *minEl})
	}
	var err error
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
	passes, err := orbit.PassesOver(sts, from, time.Duration(*hours*float64(time.Hour)))
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

// stationFlags collects repeated --station values.
type stationFlags []string

func (s *stationFlags) String() string { return strings.Join(*s, " ") }

func (s *stationFlags) Set(v string) error {
	*s = append(*s, v)
	return nil
}
