package progress

import (
	"io"

	"golang.org/x/sys/unix"
)

// terminalSize returns w's size in characters when w is a terminal.
func terminalSize(w io.Writer) (width, height int, ok bool) {
	f, isFile := w.(interface{ Fd() uintptr })
	if !isFile {
		return 0, 0, false
	}
	ws, err := unix.IoctlGetWinsize(int(f.Fd()), unix.TIOCGWINSZ)
	if err != nil || ws.Col == 0 {
		return 0, 0, false
	}
	return int(ws.Col), int(ws.Row), true
}
