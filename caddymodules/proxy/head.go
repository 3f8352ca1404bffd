package proxy

import (
	"bufio"
	"errors"
	"fmt"
	"net/http"
	"net/textproto"
	"strconv"
	"strings"

	"golang.org/x/net/http/httpguts"
)

// head is what the lean path needs of an upstream response's head; its
// header fields go straight into the client's header map.
type head struct {
	status  int
	length  int64 // body length, -1 when not known
	chunked bool
	close   bool // the connection cannot carry another request
	noBody  bool
	trailer string // the Trailer field: the names of the announced trailers
}

var errMalformed = errors.New("malformed response from the upstream")

// readLines appends br's lines up to and including the first empty one to
// buf (the bytes of a response head or of a trailer section).
func readLines(br *bufio.Reader, buf []byte) ([]byte, error) {
	start := len(buf)
	for {
		line, err := br.ReadSlice('\n')
		buf = append(buf, line...)
		switch {
		case err == bufio.ErrBufferFull:
			continue
		case err != nil:
			return buf, err
		}
		if n := len(buf) - start; n == 1 || n == 2 && buf[len(buf)-2] == '\r' {
			return buf, nil // the empty line
		}
		start = len(buf)
	}
}

// nextLine cuts the first line (without its CR LF) off s.
func nextLine(s string) (line, rest string) {
	i := strings.IndexByte(s, '\n')
	if i < 0 {
		return s, ""
	}
	line, rest = s[:i], s[i+1:]
	return strings.TrimSuffix(line, "\r"), rest
}

// field splits one header line into its name and value, validated as
// RFC 9110 5.1 and 5.5 ask (obsolete line folding is refused).
func field(line string) (name, value string, err error) {
	name, value, ok := strings.Cut(line, ":")
	if !ok || !httpguts.ValidHeaderFieldName(name) {
		return "", "", fmt.Errorf("%w: header line %.40q", errMalformed, line)
	}
	value = strings.Trim(value, " \t")
	if !httpguts.ValidHeaderFieldValue(value) {
		return "", "", fmt.Errorf("%w: value of %.40s", errMalformed, name)
	}
	return name, value, nil
}

// parseHead reads a response head (s: the bytes readLines gathered, one
// string so that every name and value is a slice of it) into h: the
// status, the framing of the body, and the end-to-end fields (RFC 9110
// 7.6.1: not Connection, the fields it names, nor the other hop-by-hop
// ones). h is touched only when the whole head is valid. method is the
// request's.
func parseHead(s, method string, h http.Header) (head, error) {
	hd := head{length: -1}
	line, rest := nextLine(s)
	proto, status, ok := strings.Cut(line, " ")
	if !ok || len(status) < 3 || (len(status) > 3 && status[3] != ' ') {
		return hd, fmt.Errorf("%w: status line %.40q", errMalformed, line)
	}
	major, minor, ok := http.ParseHTTPVersion(proto)
	if !ok || major != 1 {
		return hd, fmt.Errorf("%w: version %.20q", errMalformed, proto)
	}
	code, err := strconv.Atoi(status[:3])
	if err != nil || code < 100 {
		return hd, fmt.Errorf("%w: status %.3q", errMalformed, status)
	}
	hd.status = code
	hd.close = minor == 0

	// First pass: validate, count, find the framing and Connection.
	var conn string
	n := 0
	for ls := rest; ls != ""; {
		line, ls = nextLine(ls)
		if line == "" {
			break
		}
		if line[0] == ' ' || line[0] == '\t' {
			return hd, fmt.Errorf("%w: folded header line", errMalformed)
		}
		name, value, err := field(line)
		if err != nil {
			return hd, err
		}
		n++
		switch {
		case strings.EqualFold(name, "Connection"):
			if conn != "" {
				conn += ","
			}
			conn += value
		case strings.EqualFold(name, "Content-Length"):
			l, err := strconv.ParseInt(value, 10, 64)
			if err != nil || l < 0 || value[0] == '+' || (hd.length >= 0 && l != hd.length) {
				return hd, fmt.Errorf("%w: Content-Length %.20q", errMalformed, value)
			}
			hd.length = l
		case strings.EqualFold(name, "Transfer-Encoding"):
			if !strings.EqualFold(value, "chunked") || hd.chunked {
				return hd, fmt.Errorf("%w: Transfer-Encoding %.20q", errMalformed, value)
			}
			hd.chunked = true
		case strings.EqualFold(name, "Trailer"):
			if hd.trailer != "" {
				hd.trailer += ", "
			}
			hd.trailer += value
		}
	}
	if conn != "" && httpguts.HeaderValuesContainsToken([]string{conn}, "close") {
		hd.close = true
	}
	if hd.chunked {
		hd.length = -1 // RFC 9112 6.3: Transfer-Encoding overrides Content-Length
	}
	switch {
	case method == http.MethodHead || code < 200 || code == http.StatusNoContent || code == http.StatusNotModified:
		hd.noBody, hd.chunked = true, false // no body whatever the framing says
	case !hd.chunked && hd.length < 0:
		hd.close = true // delimited by the end of the connection
	}

	// Second pass: the end-to-end fields into h.
	vals := make([]string, n)
	seenLength := false
	for ls := rest; ls != ""; {
		line, ls = nextLine(ls)
		if line == "" {
			break
		}
		name, value, _ := field(line)
		name = textproto.CanonicalMIMEHeaderKey(name)
		if hopByHop(name) || (conn != "" && listed([]string{conn}, name)) {
			continue
		}
		if name == "Content-Length" && (hd.chunked || seenLength) {
			continue
		}
		seenLength = seenLength || name == "Content-Length"
		if old, ok := h[name]; ok { // never into a slice shared with others (Caddy's Server value)
			h[name] = append(old[:len(old):len(old)], value)
			continue
		}
		n--
		vals[n] = value
		h[name] = vals[n : n+1 : n+1]
	}
	return hd, nil
}

// parseTrailer adds the trailer fields in s (readLines' bytes after the
// last chunk) to h under http.TrailerPrefix, which net/http sends as
// trailers whether announced or not.
func parseTrailer(s string, h http.Header) error {
	for s != "" {
		var line string
		line, s = nextLine(s)
		if line == "" {
			break
		}
		name, value, err := field(line)
		if err != nil {
			return err
		}
		name = textproto.CanonicalMIMEHeaderKey(name)
		switch name {
		case "Content-Length", "Transfer-Encoding", "Trailer", "Host", "Connection":
			continue // not allowed in trailers (RFC 9110 6.5.1)
		}
		h[http.TrailerPrefix+name] = append(h[http.TrailerPrefix+name], value)
	}
	return nil
}
