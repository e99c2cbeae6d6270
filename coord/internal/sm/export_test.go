package sm

// CheckIndex verifies the live state's key index against its key tree.
func (m *Machine) CheckIndex() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	return checkIdx(m.st)
}
