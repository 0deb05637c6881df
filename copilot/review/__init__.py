"""After the call: exports and interviewer calibration."""
