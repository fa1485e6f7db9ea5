package lb

import (
	"errors"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// bufPool recycles the copy buffers of a Balancer's connections.
type bufPool struct{ p sync.Pool }

// copyBuf is the size of one direction's copy buffer.
const copyBuf = 32 << 10

func (bp *bufPool) get() *[]byte {
	if b, ok := bp.p.Get().(*[]byte); ok {
		return b
	}
	b := make([]byte, copyBuf)
	return &b
}

func (bp *bufPool) put(b *[]byte) { bp.p.Put(b) }

// proxy copies both ways until both directions ended, then closes both.
func proxy(client, server net.Conn, idle time.Duration, bufs *bufPool) {
	var last atomic.Int64
	last.Store(time.Now().UnixNano())
	done := make(chan struct{})
	go func() {
		pipe(server, client, idle, &last, bufs)
		close(done)
	}()
	pipe(client, server, idle, &last, bufs)
	<-done
	client.Close()
	server.Close()
}

// pipe copies src to dst. On EOF it half-closes dst; on any other end it
// closes both so the other direction stops too. The idle timeout counts
// traffic in both directions (last).
func pipe(dst, src net.Conn, idle time.Duration, last *atomic.Int64, bufs *bufPool) {
	bp := bufs.get()
	defer bufs.put(bp)
	buf := *bp
	var deadline time.Time
	for {
		now := time.Now()
		if deadline.Sub(now) < idle/2 {
			deadline = now.Add(idle)
			src.SetReadDeadline(deadline)
		}
		n, err := src.Read(buf)
		if n > 0 {
			last.Store(time.Now().UnixNano())
			if _, werr := dst.Write(buf[:n]); werr != nil {
				src.Close()
				dst.Close()
				return
			}
		}
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() && time.Since(time.Unix(0, last.Load())) < idle {
				deadline = time.Time{} // the other direction is busy: keep waiting
				continue
			}
			if errors.Is(err, io.EOF) {
				if cw, ok := dst.(interface{ CloseWrite() error }); ok {
					cw.CloseWrite()
					return
				}
			}
			src.Close()
			dst.Close()
			return
		}
	}
}
