"""Scripted conversation material shared by the benchmarks: user lines and memory texts."""

from __future__ import annotations

import random

TOPICS = [
    "my garden", "the old lighthouse", "my sister's wedding", "learning the violin", "my dog Biscuit",
    "the book club", "baking sourdough", "the mountain hike", "my new job at the library",
    "the chess tournament", "painting watercolours", "the harbour festival", "my grandmother's recipes",
    "the train trip to the coast", "fixing my bicycle", "the jazz concert", "learning Italian",
    "my neighbour's cat", "the science museum", "building a bookshelf", "the rainy weekend at the cabin",
    "growing tomatoes", "the pottery class", "my cousin from Lisbon", "the film about whales",
    "running my first 10k", "the antique map shop", "camping by the lake", "the board game night",
    "my broken laptop", "the street market", "knitting a scarf", "the bird watching trip",
    "the thunderstorm", "my favourite café", "the photography course", "moving to a new flat",
    "the village choir", "making jam", "the sailing lesson",
]
OPENERS = [
    "Can I tell you about {t}?", "I keep thinking about {t}.", "Guess what happened with {t}!",
    "What do you think about {t}?", "I had a funny moment with {t}.", "Do you remember {t}?",
    "I'm a bit worried about {t}.", "Something new about {t}: it went really well.",
    "I want your advice on {t}.", "Let me tell you more about {t}.",
]
DETAILS = [
    "", " It surprised me.", " I'd love to hear your thoughts.", " It made me smile.",
    " I'm not sure what to do next.",
]


def user_lines(n: int, seed: int = 7) -> list[str]:
    """n varied user messages (no two the same while n <= 2000)."""
    rng = random.Random(seed)
    combos = [(t, o, d) for t in TOPICS for o in OPENERS for d in DETAILS]
    rng.shuffle(combos)
    return [o.format(t=t) + d for t, o, d in combos[:n]]


CUSTOM_MEMORIES = [
    "{{user}} has a dog called Biscuit who loves the beach.",
    "{{user}} started a new job at the town library last spring.",
    "{{user}} is learning the violin and practises in the evenings.",
    "{{user}}'s sister is getting married by the sea.",
    "{{user}} grows tomatoes and herbs in a small garden.",
    "{{user}} collects antique maps of the coast.",
    "{{user}} sings in the village choir.",
    "{{user}} bakes sourdough bread every weekend.",
]

TOPIC_MEMORIES = [f"{{{{user}}}} once told {{{{char}}}} a long story about {t.replace('my ', 'their ')}."
                  for t in TOPICS]

PEOPLE = ["my sister", "my brother", "Grandma", "my friend Tom", "my neighbour Ana", "my boss",
          "my cousin", "the new colleague", "my old teacher", "the baker"]
PLACES = ["the harbour", "the library", "the park", "the station", "the museum", "the market",
          "the lake", "the mountains", "the café", "the beach", "the cinema", "the garden centre"]
ACTIVITIES = ["had lunch", "went for a long walk", "argued about politics", "played chess",
              "watched the boats", "looked at old photos", "planned a trip", "fixed a bike",
              "painted the fence", "cooked a curry", "talked about books", "sang songs"]
FEELINGS = ["lovely", "a bit tiring", "funny", "strange", "relaxing", "exciting", "sad",
            "surprising", "peaceful", "chaotic"]
REPLIES = ["That sounds {f}! What happened next?", "Oh, how {f}. Tell me more.",
           "I'm glad you shared that, it sounds {f}.", "Really? That must have been {f}."]


def memory_texts(n: int, seed: int = 11) -> list[str]:
    """n varied exchange-like memory texts, as the chat service stores them."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        person, place, act, feel = (rng.choice(PEOPLE), rng.choice(PLACES), rng.choice(ACTIVITIES),
                                    rng.choice(FEELINGS))
        topic = rng.choice(TOPICS)
        user = (f"Yesterday {person} and I {act} at {place}; we also talked about {topic}. "
                f"(note {i})")
        out.append("{{user}}: " + user + "\n{{char}}: " + rng.choice(REPLIES).format(f=feel))
    return out
