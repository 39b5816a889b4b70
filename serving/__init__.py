"""harmscan.serving: the BentoML scanning service (`harmscan serve`); see docs/serving.md."""
