package cron

import (
	"fmt"
	"strings"
	"time"
	_ "time/tzdata" // time zones without the host's zoneinfo

	rcron "github.com/robfig/cron/v3"

	"github.com/wisehosting/wisehosting/internal/errs"
)

// Schedule is a parsed schedule in its time zone.
type Schedule struct {
	spec rcron.Schedule
	loc  *time.Location
}

var parser = rcron.NewParser(rcron.Minute | rcron.Hour | rcron.Dom | rcron.Month | rcron.Dow | rcron.Descriptor)

// MaxSpec bounds a schedule's length.
const MaxSpec = 100

// Parse reads a standard 5-field cron expression (minute hour
// day-of-month month day-of-week, with *, lists, ranges, steps and month
// and day names) or one of @yearly, @monthly, @weekly, @daily, @hourly,
// in the IANA time zone tz ("" is UTC). Errors are sentences for users.
func Parse(spec, tz string) (s Schedule, err error) {
	spec = strings.TrimSpace(spec)
	if spec == "" {
		return s, errs.Field("schedule", "the schedule is required (5 fields: minute hour day-of-month month day-of-week, e.g. \"*/15 * * * *\")")
	}
	if len(spec) > MaxSpec {
		return s, errs.Field("schedule", fmt.Sprintf("the schedule is longer than %d characters", MaxSpec))
	}
	for _, r := range spec {
		if r < 0x20 || r > 0x7e {
			return s, errs.Field("schedule", "the schedule may hold only printable ASCII")
		}
	}
	if strings.HasPrefix(spec, "@every") || strings.Contains(spec, "TZ=") {
		return s, errs.Field("schedule", "use a 5-field schedule (and the timezone field for a time zone)")
	}
	if !strings.HasPrefix(spec, "@") && len(strings.Fields(spec)) != 5 {
		return s, errs.Field("schedule", fmt.Sprintf("the schedule %q must have 5 fields: minute hour day-of-month month day-of-week", spec))
	}
	if tz == "" {
		tz = "UTC"
	}
	if len(tz) > 64 || strings.ContainsAny(tz, " \\") || strings.Contains(tz, "..") {
		return s, errs.Field("timezone", fmt.Sprintf("unknown time zone %q (use an IANA name such as Europe/Berlin)", tz))
	}
	loc, err := time.LoadLocation(tz)
	if err != nil || tz == "Local" {
		return s, errs.Field("timezone", fmt.Sprintf("unknown time zone %q (use an IANA name such as Europe/Berlin)", tz))
	}
	defer func() {
		if r := recover(); r != nil {
			err = errs.Field("schedule", fmt.Sprintf("the schedule %q is not valid", spec))
		}
	}()
	sched, perr := parser.Parse(spec)
	if perr != nil {
		return s, errs.Field("schedule", fmt.Sprintf("the schedule %q is not valid: %v", spec, perr))
	}
	s = Schedule{spec: sched, loc: loc}
	if s.Next(time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)).IsZero() {
		return Schedule{}, errs.Field("schedule", fmt.Sprintf("the schedule %q never runs", spec))
	}
	return s, nil
}

// Next is the first time after t the schedule is due (zero: never, within
// five years).
func (s Schedule) Next(t time.Time) time.Time {
	return s.spec.Next(t.In(s.loc)).UTC()
}

// Latest is the last time in (after, now] the schedule was due, or zero
// when it was not due then. Many missed times count once: a job whose
// replicas were all down for an hour runs once, late, not sixty times.
func (s Schedule) Latest(after, now time.Time) time.Time {
	var last time.Time
	t := after
	for i := 0; i < 1_000_000; i++ {
		n := s.Next(t)
		if n.IsZero() || n.After(now) {
			break
		}
		last, t = n, n
	}
	return last
}
