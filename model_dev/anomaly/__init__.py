"""Machine-sound anomaly detection (DCASE 2020 Task 2 style): the synthetic machine corpus, the
DCASE/MIMII loaders, the detectors, AUC/pAUC evaluation and decision thresholds."""
