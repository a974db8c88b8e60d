"""Every window's score: the engine (numpy arrays in, score maps out).

``match_template`` and ``match_templates`` (:mod:`.engine`) validate and
canonicalise the inputs (:mod:`.inputs`), choose a plan (:mod:`.plan`), and
assemble the scores from correlations (:mod:`.correlate`) and window sums
(:mod:`.window_sums`), with every score's rounding error bounded and the
windows that the bound cannot vouch for recomputed by definition
(:mod:`.reference`, the float64 oracle).
"""
