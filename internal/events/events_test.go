package events

import "testing"

func TestBus(t *testing.T) {
	var b Bus
	var got []string
	cancel := b.Subscribe(func(e Event) { got = append(got, e.Kind) })
	b.Publish(Event{Kind: DomainAdded})
	cancel()
	b.Publish(Event{Kind: DomainRemoved})
	if len(got) != 1 || got[0] != DomainAdded {
		t.Fatalf("got %v", got)
	}
}
