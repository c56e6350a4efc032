"""A generated chat log with the shape of real use, for the recall benchmarks.

One person talking with one companion every day for ``days`` days (default 90), 20-40
exchanges a day between 07:00 and 23:30 UTC (the person's timezone is taken to be UTC), the
last one just before ``end``. Every exchange is one memory in the daemon's form
("{{user}}: <user line>\\n{{char}}: <reply>") with its UTC ISO 8601 ``created_at``. What it
holds, all drawn from ``random.Random(seed)``:

* chit-chat, most of the log: a morning greeting and a good night every day, "How are you?",
  "Work was long today", the weather, food, tv, moods, thanks, from a few hundred templates
  with small variations ("Hey, ...", "!", " :)", lower case), so that many lines are exact or
  near repeats of each other, as in a real log; replies come from small pools per topic.
* the person's own questions, asked again and again with replies that add nothing ("Hmm, I'm
  not sure you told me." / "I see."): questions of the ``repeated_question`` kind below, asked
  3-5 times before and after the fact was told, and a few questions whose answer never came.
* facts, each told in one exchange, with a question asked at ``end`` in the first person and
  in paraphrase (not the statement's words):

  - ``single``: told once ("My younger sister is called Inga." -> "What's the name of my
    sister?"; "I play five-a-side football every Sunday evening." -> "What keeps me busy on
    Sunday nights?").
  - ``lexical``: names, numbers and rare words that embeddings blur ("My uncle lives in
    Aarhus." -> "Which town does my uncle live in?"), each with a confuser told on another
    day that differs in the word that matters ("My aunt lives in Tromsø.", never asked).
  - ``updated``: a fact told, then changed 5+ days later (old job -> new job, moved, new
    partner, new phone...); the question asks the current one: the newest memory is expected,
    the older one is stale.
  - ``time``: an event said on the day it happened, with "today"/"tonight" ("I went kayaking
    on the river today!", "Tonight I cooked a Georgian chicken stew."), and a question naming
    a window relative to ``end`` ("What did I do yesterday?", "What did I cook on Monday?",
    "What did we talk about last weekend?", "What was I up to 4 days ago?", "What did I do on
    November 16th?"). Distractor events of the same kind (other activities, other dishes,
    other topics) are told on other days, recent and old, so that meaning alone cannot pick
    the right one; no day inside a window holds any other event.
  - ``repeated_question``: a fact told once whose question the person had already asked 3-5
    times in the log (the same words, or nearly); the fact should still come first.

``chatlog(seed, days, end)`` returns the memories in time order (oldest first, as a daemon
stores them) and the questions with the index of their expected (and stale) memory.
"""

from __future__ import annotations

import datetime as _dt
import random
from dataclasses import dataclass, field

from companion.chat.turn_input import exchange_text

UTC = _dt.timezone.utc
END = _dt.datetime(2026, 11, 27, 15, 0, tzinfo=UTC)   # a Friday afternoon
KINDS = ("single", "lexical", "updated", "time", "repeated_question")
DEFAULT_COUNTS = {"single": 8, "lexical": 10, "updated": 8, "time": 12, "repeated_question": 8}
WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")


# --- chit-chat --------------------------------------------------------------------------------
# (user lines, replies) per topic; {w} weather, {s} show, {f} food; no weekday or weekend words,
# no "cooked"/"made" (the time questions ask about those), no facts.

SHOWS = ["The Office", "Bake Off", "that crime series", "the cooking show", "Friends", "the news",
         "a nature documentary", "the quiz show", "Doctor Who", "that Danish drama"]
WEATHER = ["raining again", "so cold", "sunny", "grey", "windy", "foggy", "freezing", "warm",
           "drizzling", "really dark already"]
SNACKS = ["a sandwich", "soup", "crisps", "a banana", "toast", "leftovers", "a salad", "noodles"]

CHITCHAT: dict[str, tuple[list[str], list[str]]] = {
    "morning": (["Good morning!", "Morning!", "Morning :)", "Good morning", "Hi, good morning!",
                 "Morning, I'm up.", "Good morning, I slept badly.", "Morning! Coffee time.",
                 "Hello, morning!", "Morning, I'm still half asleep."],
                ["Good morning! How did you sleep?", "Morning! Ready for the day?",
                 "Good morning to you too!", "Morning! Coffee first, I guess?", "Hi! Good morning."]),
    "night": (["Good night!", "Night!", "Night, sleep well!", "I'm off to bed.", "Good night, talk tomorrow.",
               "Going to sleep now, good night.", "Time for bed, night!", "Nighty night.", "Good night :)",
               "I'm going to bed, good night."],
              ["Night, sleep well!", "Good night! Sweet dreams.", "Sleep well!", "Good night, talk tomorrow!",
               "Night night!"]),
    "how": (["How are you?", "How are you today?", "How's your day going?", "How are you doing?",
             "What are you up to?", "Are you there?", "Hi, how are you?", "Hey, how's it going?",
             "Hello!", "Hi!", "Hey", "I'm back."],
            ["I'm good, thanks! How are you?", "Doing well! How about you?", "I'm here! What's up?",
             "All good here. How's your day?", "Hi! Nice to hear from you."]),
    "work": (["Work was long today.", "Work was exhausting.", "Long day at work.", "So many meetings today.",
              "Work was fine, nothing special.", "I'm so tired after work.", "Just got home from work.",
              "Work was busy again.", "Finally home.", "I have a deadline tomorrow.", "I worked late again.",
              "My inbox is a disaster.", "Work was long again today.", "Another long day at work."],
             ["That sounds tiring. Take it easy tonight.", "Oh no, I hope you can rest now.",
              "You deserve a break.", "Well done for getting through it.", "Long days are the worst.",
              "I'm glad you're home now."]),
    "weather": (["It's {w} outside.", "It's {w} today.", "Ugh, it's {w}.", "The weather is {w} again.",
                 "It's {w}, I don't want to go out."],
                ["Stay warm!", "Sounds like a day for staying in.", "Typical!", "At least you're inside.",
                 "Maybe it'll be nicer tomorrow."]),
    "food": (["I'm hungry.", "I had {f} for lunch.", "I'm snacking too much.", "What should I have for dinner?",
              "Coffee number three today.", "I ordered pizza again.", "I'm starving.", "Just had {f}.",
              "I need a snack.", "Too much coffee today."],
             ["Yum!", "Treat yourself!", "Sounds good to me.", "Maybe something warm?", "Haha, fair enough.",
              "Don't forget to drink some water too."]),
    "tv": (["I'm watching {s} again.", "Just finished an episode of {s}.", "Have you seen {s}?",
            "There's nothing good on TV.", "I'm rewatching {s}.", "Watching {s} before bed."],
           ["Ooh, is it good?", "Enjoy!", "I've heard good things about it.", "A classic!",
            "Sounds like a cosy evening."]),
    "mood": (["I'm tired.", "I'm bored.", "I feel good today.", "I'm a bit stressed.", "I'm in a good mood.",
              "I can't sleep.", "I'm so sleepy.", "I'm a bit down today.", "I feel better today.",
              "I'm exhausted."],
             ["I'm sorry to hear that. Want to talk about it?", "That's great!", "Take care of yourself.",
              "I'm here if you need me.", "Glad to hear it!", "Maybe a short walk would help?"]),
    "small": (["Tell me a joke.", "Tell me something nice.", "Do you ever sleep?", "What's your favourite colour?",
               "Do you like music?", "Are you real?", "What should I do tonight?", "Can you cheer me up?",
               "What's new with you?", "Say something funny."],
              ["Why did the scarecrow win an award? He was outstanding in his field!",
               "You're doing better than you think.", "I don't sleep, but I do like quiet moments.",
               "Blue, I think!", "I love music. What are you listening to?", "Real enough to listen to you!",
               "Maybe a film and an early night?"]),
    "ack": (["Thanks!", "Haha", "lol", "Okay.", "Yeah.", "Sure.", "That's true.", "Thank you, that helps.",
             "You're sweet.", "Hmm.", "I know, right?", "Fair enough.", "Thanks :)", "Haha yes"],
            ["You're welcome!", "Haha!", "Anytime.", "Of course.", ":)", "Glad I could help."]),
    "vague": (["What was I saying?", "Where did I put my keys?", "Remember what I told you earlier?",
               "What time is it?", "What should I do today?", "Did I already tell you that?",
               "What was I going to ask you?"],
              ["Hmm, I'm not sure.", "I see.", "Good question!", "I'm not sure, sorry.", "No idea, sorry!"]),
}
TOPIC_WEIGHTS = {"how": 5, "work": 5, "weather": 3, "food": 4, "tv": 3, "mood": 4, "small": 2,
                 "ack": 6, "vague": 1}
PREFIXES = ["", "", "", "", "Hey, ", "Hi! ", "Ok so ", "Hmm, ", "So, "]
SUFFIXES = ["", "", "", "", "", " :)", " haha", "!", " lol"]
NOTHING_REPLIES = ["Hmm, I'm not sure you told me.", "I see.", "Good question! I don't think I know.",
                   "I'm not sure, sorry.", "Hmm, I don't remember.", "You tell me!",
                   "I don't think you've said."]
ORPHAN_QUESTIONS = ["What's my cousin's phone number?", "When is the bin collection?",
                    "What was that film everyone was talking about?", "Where did I park?"]


def _vary(rng: random.Random, line: str) -> str:
    """A near repeat: maybe a prefix, a suffix or lower case."""
    if rng.random() < 0.6:
        return line
    prefix, suffix = rng.choice(PREFIXES), rng.choice(SUFFIXES)
    if prefix:
        line = prefix + line[:1].lower() + line[1:]
    if suffix:
        line = line.rstrip(".!") + suffix
    if rng.random() < 0.15:
        line = line.lower()
    return line


def _chitchat(rng: random.Random, topic: str) -> tuple[str, str]:
    users, replies = CHITCHAT[topic]
    user = rng.choice(users).format(w=rng.choice(WEATHER), s=rng.choice(SHOWS), f=rng.choice(SNACKS))
    return _vary(rng, user), rng.choice(replies)


# --- facts ------------------------------------------------------------------------------------
# single and lexical slots: (statements, replies, questions, values); {v} the value.
# lexical slots also have a confuser: (statements, values), told but never asked.

SINGLE = {
    "sister": (["My younger sister is called {v}.", "My little sister {v} rang today, we talked for ages."],
               ["What a lovely name! Are you two close?"], ["What's the name of my sister?"],
               ["Inga", "Maren", "Priya", "Lucia", "Freya"]),
    "sunday": (["I play {v} every Sunday evening."], ["That sounds like a great way to end the week!"],
               ["What keeps me busy on Sunday nights?"],
               ["five-a-side football", "water polo", "in a pub quiz team", "badminton with my neighbours"]),
    "pet": (["We got a puppy! A little beagle called {v}."], ["A puppy! I want to hear everything."],
            ["What's my dog's name?"], ["Biscuit", "Pepper", "Moose", "Waffles"]),
    "allergy": (["I can't eat {v}, I'm allergic."], ["Good to know, I'll keep that in mind."],
                ["Which food do I have to avoid?"], ["peanuts", "shellfish", "sesame", "kiwi"]),
    "hometown": (["I grew up in {v}, right by the sea."], ["It must have been nice growing up by the sea."],
                 ["Where did I spend my childhood?"], ["Brighton", "Galway", "Split", "Aberdeen"]),
    "instrument": (["I've played the {v} since I was nine."], ["Wow, that's a long time!"],
                   ["What musical instrument do I know?"], ["cello", "trumpet", "accordion", "harp"]),
    "fear": (["Honestly, I'm terrified of {v}."], ["Thanks for telling me, lots of people are."],
             ["What frightens me the most?"], ["spiders", "heights", "deep water", "flying"]),
    "language": (["I've signed up for evening classes in {v}."], ["That's exciting, good luck!"],
                 ["Which language am I studying?"], ["Portuguese", "Japanese", "Finnish", "Greek"]),
    "birthday": (["My birthday is on {v}."], ["I'll remember that!"], ["When do I turn a year older?"],
                 ["the 3rd of March", "the 14th of July", "the 9th of May", "the 22nd of October"]),
    "film": (["My all-time favourite film is {v}."], ["Great choice!"], ["Which movie do I love most?"],
             ["Spirited Away", "Casablanca", "Amelie", "The Princess Bride"]),
    "friend": (["{v} has been my best friend since primary school."], ["Friends like that are precious."],
               ["Who have I been friends with since I was a kid?"], ["Tomas", "Amara", "Jonas", "Elif"]),
    "commute": (["I {v} to the office every day, it takes twenty minutes."], ["Not bad at all!"],
                ["How do I get to work?"], ["cycle", "take the tram", "walk", "take the ferry"]),
    "coffee": (["I take my coffee {v}."], ["Noted, barista mode on."], ["How do I like my morning brew?"],
               ["black with no sugar", "with oat milk", "as a double espresso", "with lots of sugar"]),
    "school": (["I studied {v} at university."], ["That sounds interesting!"], ["What was my degree in?"],
               ["marine biology", "history of art", "civil engineering", "philosophy"]),
    "holiday": (["Every summer we rent a cabin in {v}."], ["That sounds so peaceful."],
                ["Where do we go on holiday each summer?"], ["Lapland", "the Dolomites", "Cornwall", "the Lofoten islands"]),
}

LEXICAL = {
    "uncle": (["My uncle lives in {v}."], ["Oh nice, have you visited him there?"],
              ["Which town does my uncle live in?"], ["Aarhus", "Tromsø", "Zwolle", "Ghent"],
              (["My aunt lives in {v}."], ["Bergen", "Utrecht", "Odense", "Lund"])),
    "car": (["My car is a {v}."], ["Nice! Is it comfortable?"], ["What model is my car?"],
            ["Peugeot 208", "Skoda Fabia", "Mazda MX-5", "Volvo V60"],
            (["My brother drives a {v}."], ["Ford Focus", "Renault Clio", "Toyota Yaris", "Fiat Panda"])),
    "dentist": (["The dentist appointment is on {v}."], ["Thanks, I'll remind you."],
                ["When do I see the dentist?"], ["Friday at 4", "Tuesday at 9", "Monday at 2", "Thursday at 11"],
                (["The doctor wants to see me on {v}."], ["Wednesday at 10", "Monday at 5", "Friday at 8"])),
    "locker": (["My gym locker is number {v}."], ["I'll remember it for you."],
               ["What's my locker number at the gym?"], ["317", "42", "1089", "256"],
               (["The code for my bike lock is {v}."], ["5521", "8830", "1204"])),
    "landlord": (["My landlord is called Mr {v}."], ["Is he a good landlord?"],
                 ["What's my landlord's name?"], ["Okonkwo", "Van der Berg", "Kowalczyk", "Haddad"],
                 (["My neighbour is called Mrs {v}."], ["Lindqvist", "Moreau", "Fischer"])),
    "vet": (["Our vet is Dr {v}, she's brilliant with animals."], ["It's good to have a vet you trust."],
            ["Who do we take the pets to when they're ill?"], ["Halvorsen", "Achterberg", "Nakamura", "Delacroix"],
            (["My GP is Dr {v}."], ["Patel", "Novak", "Rossi"])),
    "platform": (["My train to work leaves from platform {v}."], ["Good to know!"],
                 ["Which platform does my train go from?"], ["7", "12", "3b", "19"],
                 (["The bus home stops at stand {v}."], ["4", "22", "15"])),
    "medicine": (["I take {v} for my migraines."], ["I hope it helps."],
                 ["What is my migraine medication?"], ["sumatriptan", "propranolol", "rizatriptan", "topiramate"],
                 (["My mum takes {v} for her blood pressure."], ["amlodipine", "ramipril", "bisoprolol"])),
    "wifi": (["The wifi password is {v}."], ["Got it."], ["What's the password for the wifi?"],
             ["pelican42", "mango-7731", "bluefjord9", "kettle88"],
             (["The password for the printer is {v}."], ["heron12", "lime-2290", "otter5"])),
    "shoe": (["I'm a size {v} in shoes."], ["Good to know for presents!"], ["What shoe size am I?"],
             ["38", "44", "41", "46"], (["My coat size is {v}."], ["medium", "large", "small"])),
    "grandma": (["My grandmother turns {v} in March."], ["Wow! Is there a party?"],
                ["How old will my gran be on her next birthday?"], ["91", "87", "100", "95"],
                (["My grandfather was {v} when he retired."], ["65", "70", "62"])),
    "flat": (["My flat is on the {v} floor."], ["Lots of stairs?"], ["Which floor do I live on?"],
             ["fourth", "ninth", "second", "seventh"],
             (["My office is on the {v} floor."], ["third", "sixth", "eleventh"])),
    "neighbour_cat": (["The neighbour's cat is called {v}, he visits every morning."], ["Aww!"],
                      ["What's the name of the cat next door?"], ["Mr Whiskers", "Pumpkin", "Socks", "Ziggy"],
                      (["My cousin's dog is called {v}."], ["Bruno", "Rex", "Luna"])),
    "plate": (["My number plate is {v}."], ["I'll remember it."], ["What's my car registration?"],
              ["KX19 TRW", "AB12 CDE", "LM70 PQS", "GH65 ZZA"],
              (["Dad's number plate is {v}."], ["YT11 BNM", "RE68 OKL", "WP03 HJK"])),
}

UPDATED = {
    # old statements, new statements, replies, questions, values (old and new drawn from them)
    "job": (["I work as {a} {v} at a small firm."], ["I started my new job today, I'm {a} {v} now!"],
            ["That sounds interesting!", "Congratulations on the new job!"],
            ["What do I do for a living these days?"],
            ["nurse", "teacher", "carpenter", "accountant", "librarian", "pharmacist", "electrician"]),
    "home": (["I live in {v}, in a tiny flat."], ["The move is done, I live in {v} now."],
             ["Sounds cosy!", "Welcome to your new home!"], ["Which city am I living in currently?"],
             ["Leeds", "Bristol", "Glasgow", "Cardiff", "Norwich", "York"]),
    "partner": (["I'm seeing someone called {v}, it's still new."],
                ["{old} and I split up. I've started dating {v}."],
                ["How exciting!", "I'm sorry it ended, but I'm glad you met someone."],
                ["Who is my partner at the moment?"], ["Noah", "Chloe", "Ravi", "Hana", "Oskar", "Mila"]),
    "phone": (["My phone is an old {v}."], ["I got a new phone, a {v}."], ["Does it work well?", "Ooh, shiny!"],
              ["What mobile am I using now?"], ["Pixel 6", "iPhone 12", "Galaxy S21", "Fairphone 4", "Nokia 3310"]),
    "bike": (["I ride {a} {v} bike."], ["I sold my bike and bought {a} {v} bike."], ["Nice!", "Enjoy the new ride!"],
             ["What kind of bicycle do I own now?"], ["road", "mountain", "cargo", "folding", "electric"]),
    "exercise": (["I go to {v} twice a week."], ["I quit {old}, I'm doing {v} now."],
                 ["Good for you!", "A change is good!"], ["What sport am I doing these days?"],
                 ["yoga", "spinning", "boxing", "swimming", "pilates", "rock climbing"]),
    "manager": (["My manager is {v}."], ["{old} left the company, my new manager is {v}."],
                ["How is it working with them?", "New managers can be a big change."],
                ["Who is my boss now?"], ["Greta", "Bruno", "Ines", "Tariq", "Rosa", "Viktor"]),
    "hair": (["I've dyed my hair {v}."], ["I dyed my hair {v} today."], ["Bold!", "I bet it looks great!"],
             ["What colour is my hair at the moment?"], ["blue", "pink", "purple", "green", "red"]),
    "book": (["I'm reading {v} at the moment."], ["I finished {old}, now I'm reading {v}."],
             ["Is it good?", "What did you think of it?"], ["Which book am I in the middle of?"],
             ["Middlemarch", "Dune", "Moby-Dick", "The Hobbit", "Jane Eyre", "Beloved"]),
    "flatmate": (["My flatmate is {v}, we get on well."], ["{old} moved out, my new flatmate is {v}."],
                 ["Nice!", "How is the new flatmate?"], ["Who do I share my flat with now?"],
                 ["Sami", "Anouk", "Pablo", "Leila", "Caleb", "Aiko"]),
    "laptop": (["My laptop is an old {v}."], ["I replaced my laptop, it's a {v} now."],
               ["Does it still run well?", "Ooh, upgrade!"], ["What computer am I using these days?"],
               ["ThinkPad X220", "MacBook Air", "Dell XPS 13", "Surface Laptop", "Framework 13"]),
    "diet": (["I'm {v} at the moment."], ["I stopped being {old}, I'm {v} now."],
             ["Good for you!", "How is it going?"], ["How am I eating these days?"],
             ["vegetarian", "vegan", "pescatarian", "gluten-free"]),
}

# (updated slot, single slot) pairs where one would answer the other's question as well ("What sport
# am I doing these days?" and "I play five-a-side football every Sunday evening")
EXCLUSIVE = [("exercise", "sunday"), ("diet", "allergy"), ("bike", "commute")]

# time events: kind -> (items, statements, replies, questions); {e} the item, {t} the phrase
EVENTS = {
    "activity": (["went kayaking on the river", "got my hair cut short", "went to a jazz concert",
                  "visited the aquarium and saw the sharks", "helped my uncle move house", "went ice skating",
                  "did a pottery workshop", "saw a magic show at the theatre", "went to an escape room",
                  "had a picnic by the lake", "went to a salsa class", "climbed the hill behind the town",
                  "went to a car boot sale", "visited the botanical garden", "played crazy golf",
                  "went bowling", "went to a wine tasting", "visited the castle ruins", "went to the planetarium",
                  "took a boat trip to the island", "went to a flea market", "played laser tag"],
                 ["I {e} today!", "Today I {e}, it was great.", "Guess what, I {e} today."],
                 ["That sounds amazing!", "How fun! Tell me more.", "What a day!"],
                 ["What did I do {t}?", "What was I up to {t}?"]),
    "cook": (["a Georgian chicken stew", "a mushroom risotto", "a Thai green curry", "shakshuka",
              "beef bourguignon", "sushi rolls", "a lemon tart", "dumplings from scratch", "paella",
              "a lentil dal", "stuffed peppers", "a fish pie", "gnocchi with sage butter", "a ramen broth",
              "moussaka", "falafel"],
             ["Tonight I cooked {e}.", "I cooked {e} for dinner tonight.", "Made {e} tonight, so proud."],
             ["Yum! How did it turn out?", "That sounds delicious!", "Chef!"],
             ["What did I cook {t}?", "What did I make for dinner {t}?"]),
    "talk": (["black holes", "the Roman empire", "how octopuses think", "my plan to learn sailing",
              "whether time travel is possible", "the history of chess", "why cats purr",
              "my idea for a podcast", "the northern lights", "medieval castles", "how bees dance",
              "the deep sea", "the moon landing", "volcanoes", "dinosaurs", "the silk road"],
             ["Can we talk about {e} today? I can't stop thinking about it.",
              "Today I want to talk about {e}.", "Let's talk about {e} today!"],
             ["Sure! Where shall we start?", "Oh, I love that topic!", "Yes, let's!"],
             ["What did we talk about {t}?", "What did we discuss {t}?"]),
}


# --- the log ----------------------------------------------------------------------------------

@dataclass
class Memory:
    user: str
    reply: str
    created_at: str
    tag: str = "chat"   # chat, ask:<qid>, fact:<qid>, stale:<qid>, confuser:<qid>, event:<kind>

    @property
    def text(self) -> str:
        """The exchange as the daemon remembers it."""
        return exchange_text(self.user, self.reply)


@dataclass
class Question:
    qid: str
    kind: str
    text: str
    expected: int                        # index of the expected memory in ChatLog.memories
    stale: int | None = None             # updated: the superseded memory
    window: tuple[str, str, str] | None = None   # time: (start, end, phrase), UTC, [start, end)
    asked_before: int = 0                # repeated_question: times asked in the log


@dataclass
class ChatLog:
    memories: list[Memory] = field(default_factory=list)
    questions: list[Question] = field(default_factory=list)
    end: _dt.datetime = END
    days: int = 0


@dataclass
class _Special:
    user: str
    reply: str
    day: int          # days before end's date (0 = the day of end)
    tag: str
    evening: bool = False
    key: str = ""     # to find its index afterwards


def _a(word: str) -> str:
    """The indefinite article for a word."""
    return "an" if word[:1].lower() in "aeiou" else "a"


def _cap(s: str) -> str:
    return s[:1].upper() + s[1:]


def _ordinal(n: int) -> str:
    return f"{n}{'th' if 11 <= n % 100 <= 13 else {1: 'st', 2: 'nd', 3: 'rd'}.get(n % 10, 'th')}"


def _windows(end: _dt.datetime, horizon: int) -> dict[str, list[tuple[str, tuple[int, ...]]]]:
    """Candidate time phrases by type: (phrase, the days back it covers)."""
    today = end.date()
    out: dict[str, list] = {"yesterday": [("yesterday", (1,))],
                            "day_before": [("the day before yesterday", (2,))],
                            "weekday": [], "ago": [], "week_ago": [("a week ago", (7,))],
                            "date": [], "weekend": [], "weekends_ago": []}
    for back in range(3, 7):
        out["weekday"].append((f"on {WEEKDAYS[(today - _dt.timedelta(days=back)).weekday()]}", (back,)))
    for back in range(3, min(15, horizon)):
        if back != 7:
            out["ago"].append((f"{back} days ago", (back,)))
    for back in range(8, min(21, horizon)):
        d = today - _dt.timedelta(days=back)
        out["date"].append((f"on {d.strftime('%B')} {_ordinal(d.day)}", (back,)))
    # the most recent weekend that is over, and the one before
    saturday_back = (today.weekday() - 5) % 7 + (7 if today.weekday() >= 5 else 0)
    out["weekend"].append(("last weekend", (saturday_back, saturday_back - 1)))
    out["weekends_ago"].append(("two weekends ago", (saturday_back + 7, saturday_back + 6)))
    return out


# the order in which window types are given to time questions, and the event kind each asks about
TIME_PLAN = [("weekend", "talk"), ("weekends_ago", "activity"), ("yesterday", "activity"), ("weekday", "cook"),
             ("ago", "activity"), ("day_before", "cook"), ("date", "activity"), ("weekday", "activity"),
             ("week_ago", "talk"), ("ago", "cook"), ("date", "talk"), ("ago", "talk"),
             ("weekday", "talk"), ("date", "cook"), ("ago", "activity"), ("date", "activity")]


def chatlog(seed: int = 0, days: int = 90, end: _dt.datetime = END,
            counts: dict[str, int] | None = None, per_day: tuple[int, int] = (20, 40),
            distractors_per_event: int = 2) -> ChatLog:
    """The chat log: memories oldest first, and the questions asked at `end`."""
    counts = {**DEFAULT_COUNTS, **(counts or {})}
    if days < 22:
        raise ValueError("days must be >= 22 (time questions look up to 20 days back)")
    rng = random.Random(seed)
    end = end.astimezone(UTC).replace(microsecond=0)
    specials: list[_Special] = []
    questions: list[Question] = []
    fact_days = list(range(1, days))

    # time questions first: they own their window days (no other event on them)
    windows = _windows(end, min(days, 21))
    used_days: set[int] = set()
    items = {kind: rng.sample(EVENTS[kind][0], len(EVENTS[kind][0])) for kind in EVENTS}
    plan = (TIME_PLAN * 2)[:counts["time"]]
    for n, (wtype, kind) in enumerate(plan):
        candidates = [w for w in windows[wtype] if not used_days & set(w[1])]
        if not candidates:
            candidates = [w for t in ("ago", "date") for w in windows[t] if not used_days & set(w[1])]
        phrase, covered = rng.choice(candidates)
        used_days |= set(covered)
        _, statements, replies, qs = EVENTS[kind]
        event_day = rng.choice(covered)
        qid = f"time-{n:02d}-{kind}"
        item = items[kind].pop()
        specials.append(_Special(_cap(rng.choice(statements).format(e=item)), rng.choice(replies), event_day,
                                 f"event:{kind}", evening=kind == "cook", key=qid))
        start = _dt.datetime.combine(end.date() - _dt.timedelta(days=max(covered)), _dt.time(), UTC)
        stop = _dt.datetime.combine(end.date() - _dt.timedelta(days=min(covered) - 1), _dt.time(), UTC)
        questions.append(Question(qid, "time", rng.choice(qs).format(t=phrase), -1,
                                  window=(start.isoformat(), stop.isoformat(), phrase)))
    # distractor events: other items of the same kinds, on days outside every window (half recent)
    free_recent = [d for d in range(0, 26) if d not in used_days and d < days]
    free_old = [d for d in range(26, days) if d not in used_days]
    kinds_asked = [q.qid.rsplit("-", 1)[1] for q in questions]
    for n in range(len(questions) * distractors_per_event):
        kind = kinds_asked[n % len(kinds_asked)]
        if not items[kind]:
            items[kind] = rng.sample(EVENTS[kind][0], len(EVENTS[kind][0]))
        item = items[kind].pop()
        pool = [d for d in (free_recent if n % 2 == 0 else free_old) if not (kind == "cook" and d == 0)]
        _, statements, replies, _ = EVENTS[kind]
        specials.append(_Special(_cap(rng.choice(statements).format(e=item)), rng.choice(replies),
                                 rng.choice(pool), f"event:{kind}", evening=kind == "cook"))
    # no fact, confuser or repeated question on a window day either (the window must hold one event)
    fact_days = [d for d in fact_days if d not in used_days]

    def fact(slot_table: dict, kind: str, slot: str, asked: int = 0) -> None:
        statements, replies, qs, values = slot_table[slot][:4]
        v = rng.choice(values)
        qid = f"{kind}-{slot}"
        day = rng.choice(fact_days)
        specials.append(_Special(_cap(rng.choice(statements).format(v=v)), rng.choice(replies), day,
                                 f"fact:{qid}", key=qid))
        question = rng.choice(qs)
        if len(slot_table[slot]) > 4:   # a lexical confuser, on another day
            c_statements, c_values = slot_table[slot][4]
            specials.append(_Special(_cap(rng.choice(c_statements).format(v=rng.choice(c_values))), "Noted!",
                                     rng.choice([d for d in fact_days if d != day]), f"confuser:{qid}"))
        for i in range(asked):   # asked before and after it was told, all before end
            text = question if i % 2 == 0 else _vary(rng, question)
            specials.append(_Special(text, rng.choice(NOTHING_REPLIES), rng.choice(fact_days), f"ask:{qid}"))
        questions.append(Question(qid, "repeated_question" if asked else kind, question, -1, asked_before=asked))

    # facts that would answer another's question too are never in the same log: a coin per pair
    excluded = {pair[rng.random() < 0.5] for pair in EXCLUSIVE}
    updated_slots = rng.sample(sorted(s for s in UPDATED if s not in excluded), counts["updated"])
    singles = [s for s in rng.sample(sorted(SINGLE), len(SINGLE)) if s not in excluded]
    lexicals = rng.sample(sorted(LEXICAL), len(LEXICAL))
    for slot in singles[:counts["single"]]:
        fact(SINGLE, "single", slot)
    for slot in lexicals[:counts["lexical"]]:
        fact(LEXICAL, "lexical", slot)
    rest = [("single", s) for s in singles[counts["single"]:]] + [("lexical", s) for s in lexicals[counts["lexical"]:]]
    rng.shuffle(rest)
    if len(rest) < counts["repeated_question"]:
        raise ValueError("not enough single and lexical slots for the repeated questions")
    for kind, slot in rest[:counts["repeated_question"]]:
        fact(SINGLE if kind == "single" else LEXICAL, "single" if kind == "single" else "lexical", slot,
             asked=rng.randint(3, 5))
    for q in ORPHAN_QUESTIONS:   # asked again and again, never answered
        for _ in range(rng.randint(2, 4)):
            specials.append(_Special(_vary(rng, q), rng.choice(NOTHING_REPLIES), rng.choice(fact_days), "ask:orphan"))

    for slot in updated_slots:
        olds, news, replies, qs, values = UPDATED[slot]
        old, new = rng.sample(values, 2)
        qid = f"updated-{slot}"
        old_day = rng.choice([d for d in fact_days if d >= min(days - 1, 20)])
        new_day = rng.choice([d for d in fact_days if d <= old_day - 5] or [d for d in fact_days if d < old_day])
        specials.append(_Special(_cap(rng.choice(olds).format(v=old, a=_a(old))), replies[0], old_day,
                                 f"stale:{qid}", key=qid + ":old"))
        specials.append(_Special(_cap(rng.choice(news).format(v=new, old=old, a=_a(new))), replies[1], new_day,
                                 f"fact:{qid}", key=qid))
        questions.append(Question(qid, "updated", rng.choice(qs), -1))

    # the days: chit-chat around the specials, a greeting first and a good night last
    by_day: dict[int, list[_Special]] = {}
    for s in specials:
        by_day.setdefault(s.day, []).append(s)
    stamped: list[tuple[_dt.datetime, Memory, str]] = []
    topics, weights = zip(*TOPIC_WEIGHTS.items())
    for back in range(days - 1, -1, -1):
        date = end.date() - _dt.timedelta(days=back)
        day0 = _dt.datetime.combine(date, _dt.time(), UTC)
        first = day0 + _dt.timedelta(hours=7, seconds=rng.randint(0, 3600))
        last_allowed = min(day0 + _dt.timedelta(hours=23, minutes=30), end - _dt.timedelta(minutes=5))
        span = (last_allowed - first).total_seconds()
        n = rng.randint(*per_day)
        if back == 0:   # today: only the hours until end
            n = max(3, int(n * span / (16.5 * 3600)))

        def at(lo: float, hi: float) -> _dt.datetime:
            lo_s = max(60.0, (day0 + _dt.timedelta(hours=lo) - first).total_seconds())
            hi_s = min(span - 60.0, (day0 + _dt.timedelta(hours=hi) - first).total_seconds())
            return first + _dt.timedelta(seconds=rng.uniform(lo_s, max(lo_s, hi_s)))

        day_items: list[tuple[_dt.datetime, Memory, str]] = [(first, Memory(*_chitchat(rng, "morning"), ""), "")]
        for s in by_day.get(back, []):
            when = at(18.0, 22.5) if s.evening else at(8.5, 22.5)
            day_items.append((when, Memory(s.user, s.reply, "", s.tag), s.key))
        if back != 0:
            day_items.append((last_allowed - _dt.timedelta(seconds=rng.randint(0, 1800)),
                              Memory(*_chitchat(rng, "night"), ""), ""))
        while len(day_items) < n:
            day_items.append((at(7.5, 23.0), Memory(*_chitchat(rng, rng.choices(topics, weights)[0]), ""), ""))
        day_items.sort(key=lambda item: item[0])
        stamped.extend(day_items)

    log = ChatLog(end=end, days=days)
    index: dict[str, int] = {}
    for when, memory, key in stamped:
        memory.created_at = when.replace(microsecond=0).isoformat()
        if key:
            index[key] = len(log.memories)
        log.memories.append(memory)
    for q in questions:
        q.expected = index[q.qid]
        if q.kind == "updated":
            q.stale = index[q.qid + ":old"]
    order = {kind: n for n, kind in enumerate(KINDS)}
    log.questions = sorted(questions, key=lambda q: (order[q.kind], q.qid))
    return log


def distinct(texts: list[str]) -> tuple[list[str], list[int]]:
    """The distinct texts (first-seen order) and, for each text, the position of its distinct one."""
    seen: dict[str, int] = {}
    where = [seen.setdefault(t, len(seen)) for t in texts]
    return list(seen), where


def describe(log: ChatLog) -> dict:
    """Sizes of the log, for the benchmark's JSON."""
    from collections import Counter

    users = [m.user for m in log.memories]
    texts = [m.text for m in log.memories]
    return {
        "days": log.days, "memories": len(log.memories), "end": log.end.isoformat(),
        "created_at_span": [log.memories[0].created_at, log.memories[-1].created_at],
        "distinct_user_lines": len(set(users)), "distinct_texts": len(set(texts)),
        "distinct_user_lines_lowercase_no_punct": len({"".join(c for c in u.lower() if c.isalnum() or c == " ")
                                                       for u in users}),
        "chitchat_share": round(sum(m.tag == "chat" for m in log.memories) / len(log.memories), 3),
        "by_tag": dict(Counter(m.tag.split(":")[0] for m in log.memories)),
        "questions": len(log.questions),
        "questions_by_kind": dict(Counter(q.kind for q in log.questions)),
    }
