def pytest_configure(config):
    config.addinivalue_line('markers', 'slow: a long test (several processes); CI runs it, `-m "not slow"` skips it')
