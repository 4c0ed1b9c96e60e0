"""Using a trained run: :class:`~llm2rec.serve.recommender.Recommender` (``llm2rec recommend``) and a
small local web page over it (:mod:`llm2rec.serve.app`, ``llm2rec serve``)."""
