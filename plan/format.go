package plan

import (
	"fmt"
	"io"
	"sort"
	"text/tabwriter"
	"time"
)

// named reports whether any pass names its station.
func named(passes []Pass) bool {
	for _, p := range passes {
		if p.Station != "" {
			return true
		}
	}
	return false
}

// WriteTable prints passes for people, with a STATION column when passes
// name their stations.
func WriteTable(w io.Writer, passes []Pass) error {
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	withStation := named(passes)
	if withStation {
		fmt.Fprint(tw, "STATION\t")
	}
	fmt.Fprintln(tw, "AOS (UTC)\tLOS (UTC)\tDURATION\tMAX ELEVATION")
	for _, p := range passes {
		if withStation {
			fmt.Fprintf(tw, "%s\t", p.Station)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%.1f°\n", p.AOS.Format("2006-01-02 15:04:05"), p.LOS.Format("2006-01-02 15:04:05"),
			p.Duration().Round(time.Second), p.MaxElevation)
	}
	return tw.Flush()
}

// WriteCSV prints passes as CSV with the header
// aos,los,max_elevation_deg,duration_s (UTC RFC 3339 times), and a last
// station column when passes name their stations; ParseCSV reads it back
// as a plan.
func WriteCSV(w io.Writer, passes []Pass) error {
	withStation := named(passes)
	header := "aos,los,max_elevation_deg,duration_s"
	if withStation {
		header += ",station"
	}
	if _, err := fmt.Fprintln(w, header); err != nil {
		return err
	}
	for _, p := range passes {
		line := fmt.Sprintf("%s,%s,%.2f,%d", p.AOS.UTC().Format(time.RFC3339), p.LOS.UTC().Format(time.RFC3339),
			p.MaxElevation, int(p.Duration().Round(time.Second).Seconds()))
		if withStation {
			line += "," + p.Station
		}
		if _, err := fmt.Fprintln(w, line); err != nil {
			return err
		}
	}
	return nil
}

// WriteION prints passes as ION contact lines, times in seconds after
// epoch, between nodes from and to at rateBytes per second (ION's unit).
// ION names nodes, not stations: when passes name several stations, the
// stations in name order are nodes to, to+1, …, each announced in a comment.
func WriteION(w io.Writer, passes []Pass, epoch time.Time, from, to, rateBytes uint64) error {
	fmt.Fprintf(w, "# contacts from %s UTC\n", epoch.UTC().Format(ionTimeLayout))
	node := map[string]uint64{}
	var names []string
	for _, p := range passes {
		if _, ok := node[p.Station]; !ok {
			node[p.Station] = 0
			names = append(names, p.Station)
		}
	}
	sort.Strings(names)
	for i, n := range names {
		node[n] = to + uint64(i)
		if n != "" {
			fmt.Fprintf(w, "# station %s is node %d\n", n, node[n])
		}
	}
	for _, p := range passes {
		s, e := int64(p.AOS.Sub(epoch).Seconds()), int64(p.LOS.Sub(epoch).Seconds()+0.999)
		if _, err := fmt.Fprintf(w, "a contact +%d +%d %d %d %d\n", max(s, 0), e, from, node[p.Station], rateBytes); err != nil {
			return err
		}
	}
	return nil
}
