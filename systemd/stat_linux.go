package systemd

import (
	"os"

	"golang.org/x/sys/unix"
)

type statIDs struct{ dev, ino uint64 }

func fstatIDs(f *os.File, out *statIDs) error {
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		return err
	}
	out.dev, out.ino = uint64(st.Dev), uint64(st.Ino)
	return nil
}
