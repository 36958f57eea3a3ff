"""The ``ner`` extractor: spaCy's named entities typed by the ontology, related by the parse.

``pipeline`` loads the model, ``mapping`` maps entity types to classes, ``relations`` reads
relations and literals from the dependency parse, ``extractor`` puts them together.
"""
