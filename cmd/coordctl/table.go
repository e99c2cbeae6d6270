package main

import (
	"io"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/mattn/go-runewidth"
)

// table renders rows in boxes drawn with +, - and |, with the header
// centred, as etcdctl's table output does. Cells are measured by the
// columns a terminal gives them (github.com/mattn/go-runewidth): a wide
// character such as 日 takes two, a combining accent none.
type table struct {
	header []string
	rows   [][]string
}

func newTable(header ...string) *table { return &table{header: header} }

// add appends a row; missing cells are empty, extra cells are dropped.
func (t *table) add(cells ...string) {
	row := make([]string, len(t.header))
	copy(row, cells)
	t.rows = append(t.rows, row)
}

func (t *table) render(w io.Writer) error {
	widths := make([]int, len(t.header))
	for i, h := range t.header {
		widths[i] = runewidth.StringWidth(h)
	}
	for _, row := range t.rows {
		for i, cell := range row {
			widths[i] = max(widths[i], runewidth.StringWidth(cell))
		}
	}
	var b strings.Builder
	rule := func() {
		for _, n := range widths {
			b.WriteString("+" + strings.Repeat("-", n+2))
		}
		b.WriteString("+\n")
	}
	line := func(cells []string, centre bool) {
		for i, cell := range cells {
			pad := widths[i] - runewidth.StringWidth(cell)
			left := 0
			if centre {
				left = pad / 2
			}
			b.WriteString("| " + strings.Repeat(" ", left) + cell + strings.Repeat(" ", pad-left) + " ")
		}
		b.WriteString("|\n")
	}
	rule()
	line(t.header, true)
	rule()
	for _, row := range t.rows {
		line(row, false)
	}
	rule()
	_, err := io.WriteString(w, b.String())
	return err
}

// printable returns s as is when it is printable UTF-8, otherwise quoted
// with Go escapes, so that binary keys and values cannot break a table.
func printable(s string) string {
	if !utf8.ValidString(s) || strings.IndexFunc(s, func(r rune) bool { return !unicode.IsPrint(r) }) >= 0 {
		return strconv.Quote(s)
	}
	return s
}
