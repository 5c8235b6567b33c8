package session

import "time"

// SetNow sets the clock a Manager reads, for tests of expiry and refresh.
func (m *Manager) SetNow(now func() time.Time) { m.now = now }
