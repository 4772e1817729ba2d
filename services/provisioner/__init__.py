"""TwinRequested → TwinReady: make the twin, start its services, record the baseline."""
