package graph

// DecodeEntry decodes one journal value as ReadJournal would: tests read
// the journal's history from a watch with it.
func DecodeEntry(b []byte) (Entry, error) {
	var r record
	if err := r.unmarshal(b); err != nil {
		return Entry{}, err
	}
	e := Entry{ID: r.ID, State: r.State, Attempt: r.Attempt, Reason: r.Reason, Error: r.Error,
		BlockedBy: r.BlockedBy, At: r.At, Duration: r.Duration}
	if r.Last != nil {
		e.Succeeded, e.Version, e.Digest = r.Last.At, r.Last.Version, r.Last.Digest
	}
	return e, nil
}
