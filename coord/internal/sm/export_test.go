package sm

// CheckTrees verifies the live state's trees against each other.
func (m *Machine) CheckTrees() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	return checkTrees(m.st)
}
