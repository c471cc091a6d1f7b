package console

import (
	"fmt"
	"time"

	"github.com/zoomprov/consumer/internal/messages"
)

// outcomeColors are the chart's colours: successes in greens and blues,
// deactivations and deletions in orange and purple, failures red, waits
// grey and yellow.
var outcomeColors = map[messages.Outcome]string{
	messages.OutcomeCreated:     "#2e7d32",
	messages.OutcomeExists:      "#81c784",
	messages.OutcomeUpdated:     "#1565c0",
	messages.OutcomeActivated:   "#64b5f6",
	messages.OutcomeDeactivated: "#ef6c00",
	messages.OutcomeDeleted:     "#6a1b9a",
	messages.OutcomeFailed:      "#c62828",
	messages.OutcomeDeferred:    "#9e9e9e",
	messages.OutcomeHeld:        "#f9a825",
}

// Chart geometry, in SVG user units: the drawing scales with the page.
const (
	svgWidth, svgHeight = 760, 220
	plotLeft, plotRight = 44, 8
	plotTop, plotBottom = 10, 28
)

// svgBar is one outcome's part of one minute's bar.
type svgBar struct {
	X, Y, W, H float64
	Fill       string
	Title      string
}

// svgTick is a label on an axis, and its grid line.
type svgTick struct {
	X, Y  float64
	Label string
}

// legendItem is one outcome of the hour.
type legendItem struct {
	Outcome messages.Outcome
	Fill    string
	Count   int
}

// chartView is the chart as the template draws it.
type chartView struct {
	Width, Height       int
	PlotLeft, PlotRight float64
	PlotTop, PlotBottom float64
	Bars                []svgBar
	YTicks, XTicks      []svgTick
	Legend              []legendItem
	Total               int
	Partial             bool
	Updated             time.Time
	// Summary describes the chart in words, for screen readers.
	Summary string
}

// niceCeil is the smallest of 1, 2 or 5 times a power of ten that is at
// least n (1 for n below 1).
func niceCeil(n int) int {
	for p := 1; ; p *= 10 {
		for _, m := range []int{1, 2, 5} {
			if m*p >= n {
				return m * p
			}
		}
	}
}

// view lays the chart out: one stacked bar per minute, the current
// minute right-most, outcomes in the order of messages.Outcomes.
func (ch chart) view() chartView {
	v := chartView{
		Width: svgWidth, Height: svgHeight,
		PlotLeft: plotLeft, PlotRight: svgWidth - plotRight,
		PlotTop: plotTop, PlotBottom: svgHeight - plotBottom,
		Total: ch.Total, Partial: ch.Partial, Updated: ch.Updated,
	}
	top := niceCeil(max(ch.Max, 1))
	plotH := v.PlotBottom - v.PlotTop
	slot := (v.PlotRight - v.PlotLeft) / float64(len(ch.Minutes))
	for i, m := range ch.Minutes {
		x := v.PlotLeft + float64(i)*slot + 1
		y := v.PlotBottom
		for _, o := range messages.Outcomes {
			n := m.Counts[o]
			if n == 0 {
				continue
			}
			h := plotH * float64(n) / float64(top)
			y -= h
			v.Bars = append(v.Bars, svgBar{X: x, Y: y, W: slot - 2, H: h, Fill: outcomeColors[o],
				Title: fmt.Sprintf("%s UTC: %d %s", m.Start.UTC().Format("15:04"), n, o)})
		}
		if back := len(ch.Minutes) - 1 - i; back%10 == 0 {
			label := "now"
			if back > 0 {
				label = fmt.Sprintf("-%d min", back)
			}
			v.XTicks = append(v.XTicks, svgTick{X: x + (slot-2)/2, Y: v.PlotBottom + 18, Label: label})
		}
	}
	ticks := []int{0, top}
	if top >= 2 {
		ticks = []int{0, top / 2, top}
	}
	for _, n := range ticks {
		v.YTicks = append(v.YTicks, svgTick{X: v.PlotLeft - 6, Y: v.PlotBottom - plotH*float64(n)/float64(top), Label: fmt.Sprint(n)})
	}
	for _, o := range ch.Outcomes {
		v.Legend = append(v.Legend, legendItem{Outcome: o, Fill: outcomeColors[o], Count: ch.Totals[o]})
	}
	v.Summary = fmt.Sprintf("Results per minute over the last hour: %d in all", ch.Total)
	for _, l := range v.Legend {
		v.Summary += fmt.Sprintf(", %d %s", l.Count, l.Outcome)
	}
	return v
}
