"""Finding templates in score maps: peaks, suppression, and the search strategies.

:func:`matcher.find` and :func:`matcher.find_many` (:mod:`.find`) validate the
options once, pick a strategy (exhaustive, tiled, pyramid) and turn its
candidates into :class:`matcher.Match` objects scored by definition.
"""
