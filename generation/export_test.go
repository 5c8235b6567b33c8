package generation

// RunStored runs generation gen of conv, which the test stored itself (a
// post taken the lease), as Post would after admitting it.
func (m *Manager) RunStored(conv, gen string, ended func()) error {
	if err := m.reserve(); err != nil {
		return err
	}
	m.start(conv, gen, ended)
	return nil
}
