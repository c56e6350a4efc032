"""Long-term memory: what is remembered, how it is found again.

Owns the embedder (embedder.py, numpy_bert.py: MiniLM run with numpy), the index (index.py: Chroma
on disk or a server, and the in-memory vector table searched exactly), what a memory's views are
(units.py), its lexical terms (words.py), the ranking that fuses them (ranking.py: vector, words,
recency, time, duplicates, newest version first), time words in a question (time_words.py) and
LongTermMemory (recall.py: add, index, recall, rebuild).

May import: the foundations, formats, store, model (model/loading.py only: loading in the
background). Never chat, characters, voice, api or services.
"""
