"""Every window's score: the engine (numpy arrays in, score maps out).

``match_template`` and ``match_templates`` (:mod:`.engine`) validate and
canonicalise the inputs (:mod:`.inputs`), choose a plan (:mod:`.plan`), and
assemble the scores (:mod:`.assembly`) from correlations (:mod:`.correlate`,
:mod:`.image_channel`) and window terms (:mod:`.window_terms`), with every
score's rounding error bounded (:mod:`.error_model`) and the windows that the
bound cannot vouch for settled (:mod:`.settle`): refined in float64 or
recomputed by definition (:mod:`.reference`, the float64 oracle).
"""
