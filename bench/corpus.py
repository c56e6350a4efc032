"""A generated long-conversation corpus with planted facts, for the recall benchmarks.

Shaped like LoCoMo / LongMemEval: long conversations between a user and a companion, each a
run of varied small talk (built from templates over many topics, people, places, activities,
foods, films and days, so that fillers are not trivially told apart), with planted facts in
some exchanges and questions about them asked after the conversation. Three kinds:

* ``single``: one fact ("My sister's name is Inga.") -> "What is my sister called?"
* ``updated``: an early fact and a later change ("I drive a red Volvo." ... "I sold the Volvo,
  now I drive a blue Tesla.") -> "What car do I drive now?"; the correct memory is the latest.
* ``time``: something done at a time ("Last Tuesday I went to a jazz concert.") -> "What did
  I do last Tuesday?"; fillers of that conversation never mention the same time phrase.

Every exchange is one memory text in the daemon's form ("{{user}}: ...\\n{{char}}: ...") with a
``created_at`` spread over weeks, newest last (hours before now). Everything is drawn from ``random.Random(seed)``.
"""

from __future__ import annotations

import datetime as _dt
import random
from dataclasses import dataclass, field

from companion.chat.turn_input import exchange_text

# --- pools ------------------------------------------------------------------------------------

NAMES = ["Inga", "Tomas", "Priya", "Mateo", "Yuki", "Sofia", "Liam", "Amara", "Jonas", "Elif",
         "Noah", "Chloe", "Ravi", "Hana", "Oskar", "Lucia", "Kofi", "Mila", "Arjun", "Freya",
         "Diego", "Nadia", "Felix", "Zara", "Emil", "Leila", "Bruno", "Ines", "Tariq", "Greta",
         "Pablo", "Anouk", "Sami", "Rosa", "Viktor", "Maren", "Caleb", "Aiko", "Dmitri", "Lena"]
CITIES = ["Lisbon", "Oslo", "Kyoto", "Valencia", "Edinburgh", "Krakow", "Montreal", "Porto",
          "Tallinn", "Bologna", "Ghent", "Seville", "Bergen", "Dublin", "Lyon", "Gdansk",
          "Vancouver", "Melbourne", "Nairobi", "Hamburg", "Utrecht", "Turin", "Aarhus", "Cork"]
PLACES = ["the harbour", "the library", "the park", "the station", "the museum", "the market",
          "the lake", "the old town", "the café on the corner", "the beach", "the cinema",
          "the garden centre", "the swimming pool", "the bakery", "the bookshop", "the gym",
          "the community hall", "the hardware store", "the botanical garden", "the flea market"]
COMPANIONS = ["my friend Tom", "my neighbour Ana", "my colleague Ben", "my mum", "my dad",
              "my cousin", "an old school friend", "my flatmate", "a few people from work",
              "my aunt", "my grandpa", "the kids next door", "my yoga group", "nobody, just me"]
ACTIVITIES = ["had lunch", "went for a long walk", "played chess", "watched the boats",
              "looked at old photos", "planned a trip", "fixed a bike", "painted the fence",
              "cooked a curry", "talked about books", "did a puzzle", "went shopping",
              "fed the ducks", "tidied the shed", "tried a new recipe", "watched the sunset",
              "sorted out the attic", "played cards", "went for a swim", "repotted some plants"]
FEELINGS = ["lovely", "a bit tiring", "funny", "strange", "relaxing", "exciting", "bittersweet",
            "boring, honestly", "surprisingly nice", "chaotic", "peaceful", "stressful"]
WEATHER = ["rainy", "grey and windy", "sunny", "freezing", "humid", "foggy", "stormy",
           "oddly warm", "snowy", "perfect"]
SUBJECTS = ["whales", "the history of tea", "medieval castles", "deep sea creatures",
            "the moon landing", "ancient Rome", "bees", "the northern lights", "volcanoes",
            "old sailing ships", "jazz musicians", "the silk road", "rainforests", "typography",
            "a lighthouse keeper", "chess champions", "glaciers", "street food", "octopuses",
            "an Antarctic expedition"]
DISHES = ["a lentil soup", "pancakes", "a mushroom risotto", "fish tacos", "a tomato tart",
          "dumplings", "a big salad", "banana bread", "a chickpea stew", "grilled sardines",
          "homemade pizza", "a spicy noodle soup", "roast vegetables", "apple crumble"]
HOBBIES = ["knitting", "bird watching", "pottery", "baking bread", "woodworking", "gardening",
           "photography", "jigsaw puzzles", "watercolour painting", "crosswords", "origami",
           "playing the ukulele", "geocaching", "calligraphy", "sourdough", "stargazing"]
WORK_EVENTS = ["the meeting ran over again", "my inbox exploded", "we finally shipped the project",
               "the printer broke", "I had to cover for a colleague", "my manager praised my report",
               "the coffee machine was fixed", "we had a long planning session",
               "I trained a new intern", "the wifi was down all morning"]
TIMES_FILLER = ["yesterday", "this morning", "this afternoon", "earlier today", "tonight",
                "the other day", "a while ago", "recently", "this week"]
THINGS = ["rainy days", "old films", "spicy food", "early mornings", "long train rides",
          "board games", "crowded places", "the sea", "autumn", "cats", "podcasts", "museums",
          "camping", "poetry", "karaoke", "road trips", "winter", "thunderstorms"]

REPLY_OPENERS = ["Oh, that sounds {feel}!", "Really?", "I love hearing about this.",
                 "Ha, I can picture it.", "That's nice.", "Hmm, interesting.", "Oh no!",
                 "How wonderful.", "That makes sense.", "I see.", "Tell me more!", "Wow."]
REPLY_FOLLOWUPS = ["What happened next?", "How did you feel about it?", "Would you do it again?",
                   "Who else was there?", "Did it take long?", "I'd love to hear more about that.",
                   "What was the best part?", "Was it what you expected?",
                   "Do you do that often?", "Thanks for telling me.", "That must have been something.",
                   "I hope you get some rest."]
REPLY_FEELS = ["lovely", "fun", "exhausting", "peaceful", "wonderful", "a bit much", "cosy"]


def _filler_user(rng: random.Random, banned_times: set[str]) -> tuple[str, str]:
    """One small-talk user line and a topic word for the reply."""
    when = rng.choice([t for t in TIMES_FILLER if not any(b in t for b in banned_times)])
    k = rng.randrange(14)
    if k == 0:
        return (f"{when.capitalize()} I {rng.choice(ACTIVITIES)} at {rng.choice(PLACES)} with "
                f"{rng.choice(COMPANIONS)}. It was {rng.choice(FEELINGS)}.", "that")
    if k == 1:
        thing = rng.choice(THINGS)
        return f"What do you think about {thing}?", thing
    if k == 2:
        return (f"The weather is {rng.choice(WEATHER)} today and I feel {rng.choice(FEELINGS)}.",
                "the weather")
    if k == 3:
        return f"I'm thinking of getting into {rng.choice(HOBBIES)}. Is that silly?", "hobbies"
    if k == 4:
        return f"I'm reading a book about {rng.choice(SUBJECTS)}. It's {rng.choice(FEELINGS)}.", "books"
    if k == 5:
        return f"I watched a documentary about {rng.choice(SUBJECTS)} {when}.", "documentaries"
    if k == 6:
        return f"I cooked {rng.choice(DISHES)} for dinner {when}, it turned out {rng.choice(FEELINGS)}.", "food"
    if k == 7:
        return f"Work was {rng.choice(FEELINGS)} today, {rng.choice(WORK_EVENTS)}.", "work"
    if k == 8:
        return rng.choice(["How are you today?", "Did you sleep well?", "What are you up to?",
                           "Can I ask you something random?", "Do you ever get bored?",
                           "Tell me a fun fact.", "What's your favourite season?",
                           "Do you like mornings or evenings better?"]), "you"
    if k == 9:
        who, what = rng.choice(COMPANIONS).capitalize(), rng.choice(ACTIVITIES)   # drawn in this order
        after = rng.choice(['It rained the whole time.', 'We laughed a lot.', 'I was so tired after.',
                            'It felt like old times.', ''])
        return f"{who} and I {what} {when}. {after}".strip(), "that"
    if k == 10:
        return (f"I might go to {rng.choice(PLACES)} {rng.choice(['later', 'tomorrow', 'at the weekend', 'soon'])}. "
                f"Any ideas what I could do there?"), "plans"
    if k == 11:
        return (f"I've been doing some {rng.choice(HOBBIES)} {when}, it's {rng.choice(FEELINGS)}.",
                "hobbies")
    if k == 12:
        thing = rng.choice(THINGS)
        return f"Do you like {thing}? I'm not sure I do.", thing
    return (f"I ran into {rng.choice(COMPANIONS)} at {rng.choice(PLACES)} {when}. "
            f"We talked about {rng.choice(SUBJECTS)}."), "that"


def _filler_reply(rng: random.Random, topic: str) -> str:
    opener = rng.choice(REPLY_OPENERS).format(feel=rng.choice(REPLY_FEELS))
    middle = rng.choice(["", f" I've always found {topic} fascinating.", f" I like talking about {topic} with you.",
                         " You always notice the little things.", " It sounds like quite a day.", ""])
    return f"{opener}{middle} {rng.choice(REPLY_FOLLOWUPS)}"


# --- planted facts ----------------------------------------------------------------------------
# Each slot: statements (user text), replies (companion text), questions. {v} is the value.

SINGLE_SLOTS = {
    "sister": (["My sister's name is {v}.", "By the way, my older sister is called {v}.",
                "Did I tell you? My little sister {v} is visiting soon."],
               ["{v} is a lovely name! Are you two close?", "Oh, I'd love to hear more about {v}."],
               ["What is my sister called?", "What's my sister's name?"], NAMES),
    "dog": (["I have a dog named {v}, a scruffy little terrier.", "My dog is called {v}, he's a beagle."],
            ["{v}! What a good name for a dog.", "Give {v} a scratch behind the ears from me."],
            ["What's my dog's name?", "What is my dog called?"], NAMES),
    "allergy": (["I'm allergic to {v}, so I always have to be careful.", "Just so you know, I have a {v} allergy."],
                ["Thanks for telling me, I'll remember that.", "That must make eating out tricky."],
                ["What am I allergic to?", "Do I have any allergies?"],
                ["peanuts", "shellfish", "cats", "pollen", "penicillin", "strawberries", "bee stings",
                 "sesame", "dust mites", "kiwi"]),
    "hometown": (["I grew up in {v}, near the river.", "I was born and raised in {v}."],
                 ["{v}! I've heard it's beautiful. Do you miss it?", "What was growing up in {v} like?"],
                 ["Where did I grow up?", "What's my hometown?"], CITIES),
    "best_friend": (["My best friend is {v}, we've known each other since school.",
                     "{v} is my best friend, she always knows what to say."],
                    ["It's great to have a friend like {v}.", "How did you and {v} meet?"],
                    ["Who is my best friend?", "What's my best friend's name?"], NAMES),
    "instrument": (["I play the {v}, I've been practising for years.", "I started learning the {v} as a kid."],
                   ["The {v}! Will you play something for me one day?", "That's impressive, the {v} isn't easy."],
                   ["What instrument do I play?", "Which musical instrument do I play?"],
                   ["cello", "trumpet", "harp", "bassoon", "accordion", "banjo", "oboe", "drums",
                    "clarinet", "saxophone"]),
    "birthday": (["My birthday is on {v}.", "Mark your calendar: my birthday is {v}."],
                 ["I'll remember {v}! Any plans for it?", "Noted! Do you like big parties?"],
                 ["When is my birthday?", "What date is my birthday?"],
                 ["the 3rd of March", "the 14th of July", "the 22nd of October", "the 9th of May",
                  "the 30th of November", "the 1st of August", "the 17th of January", "the 25th of June"]),
    "language": (["I'm learning {v} in an evening class.", "I've started taking {v} lessons."],
                 ["Learning {v} is a great idea! How is it going?", "Say something in {v} for me!"],
                 ["What language am I learning?", "Which language am I studying?"],
                 ["Portuguese", "Japanese", "Finnish", "Turkish", "Greek", "Korean", "Dutch", "Swahili",
                  "Polish", "Icelandic"]),
    "favourite_food": (["My absolute favourite food is {v}.", "Honestly, nothing beats {v}, it's my favourite dish."],
                       ["Mmm, {v}! Who makes the best one?", "Great choice, {v} is hard to beat."],
                       ["What's my favourite food?", "Which dish do I like the most?"],
                       ["lasagne", "ramen", "paella", "pierogi", "falafel", "moussaka", "pho", "gnocchi",
                        "shakshuka", "bibimbap"]),
    "fear": (["I'm really scared of {v}, always have been.", "To be honest, I'm terrified of {v}."],
             ["That's okay, lots of people are.", "Thank you for trusting me with that."],
             ["What am I afraid of?", "What scares me?"],
             ["spiders", "heights", "deep water", "thunder", "clowns", "snakes", "flying", "the dark"]),
}

UPDATED_SLOTS = {
    # (old statements, new statements, replies old, replies new, questions, values)
    "car": (["I drive a {v}, it's old but reliable."],
            ["I sold the {old}, now I drive a {v}.", "Big news: I got rid of the {old} and bought a {v}."],
            ["A {v}! Does it handle well?"], ["Congratulations on the {v}! Do you miss the {old}?"],
            ["What car do I drive now?", "What car do I have at the moment?"],
            ["red Volvo", "blue Tesla", "green Fiat", "silver Toyota", "white Skoda", "black Audi",
             "yellow Renault", "grey Honda", "orange Mini", "brown Subaru"]),
    "home": (["I live in {v} at the moment, in a small flat."],
             ["I moved! I live in {v} now.", "We finally relocated from {old}, I'm in {v} now."],
             ["{v} sounds like a nice place to live."], ["Welcome to {v}! How is the new place?"],
             ["Where do I live now?", "Which city do I live in now?"], CITIES),
    "job": (["I work as a {v} at a small company."],
            ["I quit being a {old}, I'm working as a {v} now.", "I changed careers, I'm a {v} now instead of a {old}."],
            ["Being a {v} sounds interesting. Do you enjoy it?"], ["A {v}! That's a big change, how does it feel?"],
            ["What is my job now?", "What do I do for work these days?"],
            ["nurse", "teacher", "software developer", "carpenter", "accountant", "baker",
             "graphic designer", "librarian", "pharmacist", "electrician", "chef", "architect"]),
    "partner": (["I'm dating someone called {v}, it's still new."],
                ["{old} and I broke up. I'm seeing {v} now.", "Things ended with {old}; I've started dating {v}."],
                ["How exciting! How did you meet {v}?"], ["I'm sorry about {old}, but I'm glad you met {v}."],
                ["Who am I dating now?", "Who is my partner at the moment?"], NAMES),
    "phone": (["My phone is a {v}, I've had it for ages."],
              ["I finally replaced my {old}, I've got a {v} now.", "New phone! I switched from the {old} to a {v}."],
              ["Does the {v} still work well?"], ["Ooh, a {v}! Do you like it?"],
              ["What phone do I have now?", "Which phone am I using now?"],
              ["Pixel 6", "iPhone 12", "Galaxy S21", "Nokia 3310", "Fairphone 4", "OnePlus 9",
               "iPhone 15", "Pixel 8", "Galaxy S24", "Xperia 5"]),
    "sport": (["I play {v} every week with friends."],
              ["I stopped {old}, I'm into {v} now.", "I gave up {old}; these days I do {v} instead."],
              ["{v} is great exercise! Are you competitive?"], ["{v} sounds fun! Why did you stop {old}?"],
              ["What sport do I do now?", "Which sport am I doing these days?"],
              ["tennis", "climbing", "volleyball", "rowing", "badminton", "fencing", "squash",
               "basketball", "table tennis", "judo"]),
    "diet": (["I'm {v} at the moment."],
             ["I stopped being {old}, I'm {v} now.", "I changed my diet: no longer {old}, I'm {v} these days."],
             ["Being {v} can be good for you."], ["How is being {v} going so far?"],
             ["What's my diet now?", "How do I eat these days?"],
             ["vegetarian", "vegan", "pescatarian", "gluten-free", "on a low-carb diet", "dairy-free"]),
}

TIME_SLOTS = {
    # time phrase for the statement, the same in the question
    "phrases": ["last Monday", "last Tuesday", "last Wednesday", "last Thursday", "last Friday",
                "last Saturday", "last Sunday", "last weekend", "on New Year's Eve",
                "during the Easter holidays", "on my birthday", "two weekends ago"],
    "events": [("went to a jazz concert", "Jazz! Was the saxophonist any good?"),
               ("ran my first half marathon", "A half marathon! You must be so proud."),
               ("got a tattoo of a swallow", "A swallow tattoo, how meaningful. Did it hurt?"),
               ("visited a lavender farm", "Lavender fields! It must have smelled amazing."),
               ("went to a pottery workshop and made a wonky vase", "I bet the wonky vase has character."),
               ("took a hot-air balloon ride", "A balloon ride! Were you nervous up there?"),
               ("went to an escape room with my colleagues", "Did you escape in time?"),
               ("saw a magic show at the theatre", "How fun! Did you figure out any of the tricks?"),
               ("went kayaking on the river", "Kayaking sounds so peaceful."),
               ("attended a wine tasting", "Did you find a favourite wine?"),
               ("helped my uncle move house", "That's kind of you. Moving is exhausting."),
               ("went to a salsa dancing class", "Salsa! Did you step on anyone's toes?"),
               ("watched a football match at the stadium", "Who won the match?"),
               ("had dinner at a Georgian restaurant", "Georgian food is wonderful. Did you try khachapuri?"),
               ("went ice skating", "Ice skating! Did you fall over?"),
               ("visited the aquarium and saw the sharks", "Sharks up close! Were they huge?")],
    "statements": ["{T} I {e}.", "{T} I {e}, it was great.", "Guess what, {t} I {e}!"],
    "questions": ["What did I do {t}?", "What was I up to {t}?"],
}


# --- the corpus -------------------------------------------------------------------------------

@dataclass
class Exchange:
    user: str
    reply: str
    created_at: str
    fact: str | None = None  # "<qid>:old" / "<qid>:new" / "<qid>" for planted facts

    @property
    def text(self) -> str:
        """The exchange as the daemon remembers it."""
        return exchange_text(self.user, self.reply)


@dataclass
class Question:
    qid: str
    kind: str  # single, updated, time
    slot: str
    text: str
    expected: int  # index into the conversation's exchanges
    stale: int | None = None  # for updated facts: the superseded exchange


@dataclass
class Conversation:
    exchanges: list[Exchange] = field(default_factory=list)
    questions: list[Question] = field(default_factory=list)


def _cap(s: str) -> str:
    return s[:1].upper() + s[1:]


def conversation(rng: random.Random, index: int, exchanges: int, facts: int,
                 end: _dt.datetime) -> Conversation:
    """One conversation of `exchanges` exchanges with `facts` planted facts (and their questions)."""
    kinds = [("single", "updated", "time")[i % 3] for i in range(facts)]
    rng.shuffle(kinds)
    singles = rng.sample(sorted(SINGLE_SLOTS), sum(k == "single" for k in kinds))
    updates = rng.sample(sorted(UPDATED_SLOTS), sum(k == "updated" for k in kinds))
    n_time = sum(k == "time" for k in kinds)
    phrases = rng.sample(TIME_SLOTS["phrases"], n_time)
    events = rng.sample(TIME_SLOTS["events"], n_time)
    banned = {p.split()[-1] for p in phrases}  # no filler says "... Tuesday" when Tuesday is planted
    plan: list[tuple[str, str, str, str]] = []  # (qid, role, user, reply)
    questions: list[Question] = []
    for slot in singles:
        statements, replies, qs, values = SINGLE_SLOTS[slot]
        v = rng.choice(values)
        qid = f"c{index}-single-{slot}"
        plan.append((qid, "fact", rng.choice(statements).format(v=v), rng.choice(replies).format(v=v)))
        questions.append(Question(qid, "single", slot, rng.choice(qs), -1))
    for slot in updates:
        olds, news, r_old, r_new, qs, values = UPDATED_SLOTS[slot]
        old, new = rng.sample(values, 2)
        qid = f"c{index}-updated-{slot}"
        plan.append((qid, "old", rng.choice(olds).format(v=old), rng.choice(r_old).format(v=old)))
        plan.append((qid, "new", rng.choice(news).format(v=new, old=old),
                     rng.choice(r_new).format(v=new, old=old)))
        questions.append(Question(qid, "updated", slot, rng.choice(qs), -1))
    for phrase, (event, reply) in zip(phrases, events):
        qid = f"c{index}-time-{phrase.replace(' ', '_')}"
        statement = rng.choice(TIME_SLOTS["statements"]).format(T=_cap(phrase), t=phrase, e=event)
        plan.append((qid, "fact", statement, reply))
        questions.append(Question(qid, "time", phrase, rng.choice(TIME_SLOTS["questions"]).format(t=phrase), -1))
    # positions: spread over the conversation; an update's "new" comes well after its "old"
    n = max(exchanges, len(plan) + 4)
    free = list(range(n))
    positions: dict[tuple[str, str], int] = {}
    for qid, role, _, _ in plan:
        if role == "old":
            pos = rng.choice([p for p in free if p < n * 0.45] or free)
        elif role == "new":
            pos = rng.choice([p for p in free if p > positions[(qid, "old")] + n * 0.3] or
                             [p for p in free if p > positions[(qid, "old")]] or free)
        else:
            pos = rng.choice(free)
        free.remove(pos)
        positions[(qid, role)] = pos
    texts = {(qid, role): (_cap(user), _cap(reply)) for qid, role, user, reply in plan}
    planted = {pos: (key[0], key[1], *texts[key]) for key, pos in positions.items()}
    # timestamps: one exchange every ~day (6 to 40 hours apart), the newest at `end`
    gaps = [rng.uniform(6, 40) for _ in range(n)]
    stamps, moment = [], end
    for gap in reversed(gaps):
        stamps.append(moment.isoformat(timespec="seconds"))
        moment -= _dt.timedelta(hours=gap)
    stamps.reverse()
    conv = Conversation()
    seen: set[str] = set()
    for pos in range(n):
        stamp = stamps[pos]
        if pos in planted:
            qid, role, user, reply = planted[pos]
            conv.exchanges.append(Exchange(user, reply, stamp, f"{qid}:{role}"))
            continue
        while True:
            user, topic = _filler_user(rng, banned)
            if user not in seen:
                break
        seen.add(user)
        conv.exchanges.append(Exchange(user, _filler_reply(rng, topic), stamp))
    for q in questions:
        if q.kind == "updated":
            q.expected = positions[(q.qid, "new")]
            q.stale = positions[(q.qid, "old")]
        else:
            q.expected = positions[(q.qid, "fact")]
    conv.questions = questions
    return conv


def corpus(seed: int = 0, conversations: int = 20, exchanges: int = 60, facts: int = 6,
           end: _dt.datetime | None = None) -> list[Conversation]:
    """`conversations` conversations, each ending 1 to 72 hours before `end` (default: now).

    Texts, order and the gaps between timestamps depend only on the seed; `end` anchors the
    timeline so that recency-weighted recall sees ages like a live daemon would (the newest
    exchanges hours old, the oldest weeks old).
    """
    rng = random.Random(seed)
    if end is None:
        end = _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0)
    return [conversation(rng, i, exchanges, facts, end - _dt.timedelta(hours=rng.uniform(1, 72)))
            for i in range(conversations)]


def filler_texts(n: int, seed: int = 0) -> list[str]:
    """n distinct small-talk exchange texts (memory form), for the latency benchmark."""
    rng = random.Random(seed)
    out: list[str] = []
    seen: set[str] = set()
    attempts = 0
    while len(out) < n:
        user, topic = _filler_user(rng, set())
        text = f"{{{{user}}}}: {user}\n{{{{char}}}}: {_filler_reply(rng, topic)}"
        attempts += 1
        if text in seen and attempts < n * 20:
            continue
        if text in seen:  # the template space ran out: make it distinct
            text = f"{text} (#{len(out)})"
        seen.add(text)
        out.append(text)
    return out


def latency_queries(n: int, seed: int = 1) -> list[str]:
    """n varied recall queries (questions and small-talk lines, as a user would send)."""
    rng = random.Random(seed)
    pool = [q for slot in SINGLE_SLOTS.values() for q in slot[2]]
    pool += [q for slot in UPDATED_SLOTS.values() for q in slot[4]]
    pool += [q.format(t=t) for q in TIME_SLOTS["questions"] for t in TIME_SLOTS["phrases"]]
    out = []
    for i in range(n):
        out.append(rng.choice(pool) if i % 2 == 0 else _filler_user(rng, set())[0])
    return out
