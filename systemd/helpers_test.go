package systemd

import (
	"io"
	"log/slog"
	"sync"
)

type jhWrap struct{ jh journalHandler }

func journalHandlerFor(w io.Writer) *jhWrap {
	return &jhWrap{jh: journalHandler{w: w, level: slog.LevelDebug, mu: new(sync.Mutex)}}
}

func newMutex() *sync.Mutex { return new(sync.Mutex) }
