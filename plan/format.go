package plan

import (
	"fmt"
	"io"
	"text/tabwriter"
	"time"
)

// WriteTable prints passes for people.
func WriteTable(w io.Writer, passes []Pass) error {
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "AOS (UTC)\tLOS (UTC)\tDURATION\tMAX ELEVATION")
	for _, p := range passes {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%.1f°\n", p.AOS.Format("2006-01-02 15:04:05"), p.LOS.Format("2006-01-02 15:04:05"),
			p.Duration().Round(time.Second), p.MaxElevation)
	}
	return tw.Flush()
}

// WriteCSV prints passes as CSV with the header
// aos,los,max_elevation_deg,duration_s (UTC RFC 3339 times); ParseCSV reads
// it back as a plan.
func WriteCSV(w io.Writer, passes []Pass) error {
	if _, err := fmt.Fprintln(w, "aos,los,max_elevation_deg,duration_s"); err != nil {
		return err
	}
	for _, p := range passes {
		if _, err := fmt.Fprintf(w, "%s,%s,%.2f,%d\n", p.AOS.UTC().Format(time.RFC3339), p.LOS.UTC().Format(time.RFC3339),
			p.MaxElevation, int(p.Duration().Round(time.Second).Seconds())); err != nil {
			return err
		}
	}
	return nil
}

// WriteION prints passes as ION contact lines, times in seconds after
// epoch, between nodes from and to at rateBytes per second (ION's unit).
func WriteION(w io.Writer, passes []Pass, epoch time.Time, from, to, rateBytes uint64) error {
	fmt.Fprintf(w, "# contacts from %s UTC\n", epoch.UTC().Format(ionTimeLayout))
	for _, p := range passes {
		s, e := int64(p.AOS.Sub(epoch).Seconds()), int64(p.LOS.Sub(epoch).Seconds()+0.999)
		if _, err := fmt.Fprintf(w, "a contact +%d +%d %d %d %d\n", max(s, 0), e, from, to, rateBytes); err != nil {
			return err
		}
	}
	return nil
}
