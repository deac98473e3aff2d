# ruff: noqa: E501  (hand-written material: one entry per line reads better than wrapped strings)
"""Passages for summarising prompts, composed from sentence variants and fictional facts.

Places, companies, people and studies are invented, so a passage never states a false fact about
the real world; the hand-written explanatory passages at the end are general knowledge.
"""

from __future__ import annotations

from collections.abc import Callable

from prompt_picker import Picker, a_or_an, cap

TOWNS = [
    "Millbrook", "Ashford Vale", "Kelby", "Port Alder", "Hartwell", "Brackenfield", "Eastmere",
    "Linden Cross", "Stonebridge", "Westhaven", "Oakridge", "Fernley", "Marlow Green",
    "Calder Bay", "Redfield", "Thornbury", "Wrenfold", "Halsey Down", "Corran", "Elmstead",
]  # fmt: skip
DAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday"]
MONTHS = ["January", "March", "April", "May", "June", "September", "October", "November"]
NAMES = [
    "Priya", "Tom", "Aisha", "Marek", "Hannah", "Luis", "Grace", "Kenji", "Fatima", "Owen",
    "Sofia", "Daniel", "Mei", "Jonas", "Chloe", "Samuel", "Amara", "Ravi", "Elena", "Ben",
]  # fmt: skip

# (project, benefit, criticism)
PROJECTS = [
    ("build a cycle path along the river", "cut traffic in the town centre", "the money would be better spent on repairing roads"),
    ("turn the old cinema into a community arts centre", "give young people somewhere to go in the evenings", "the running costs have been underestimated"),
    ("extend the opening hours of the public library", "help students who have nowhere quiet to study", "the library will struggle to find extra staff"),
    ("replace every streetlight with low-energy LED lamps", "halve the cost of lighting the streets", "the new lights are too bright for residential roads"),
    ("plant 5,000 trees on the edge of town", "provide shade and reduce the risk of flooding", "the land could have been used for affordable housing"),
    ("close the high street to cars on weekends", "bring more visitors to local shops", "deliveries and access for disabled drivers will become harder"),
    ("start a weekly food-waste collection", "reduce the amount of rubbish sent to landfill", "households have not been asked whether they want it"),
    ("build a new swimming pool next to the secondary school", "make swimming lessons available to every child", "the site is too small and will cause parking problems"),
    ("run an electric bus service to the hospital", "make appointments easier to reach for older patients", "too few people will use it to justify the cost"),
    ("restore the Victorian bandstand in the central park", "bring concerts and events back to the park", "the money should go to social care instead"),
    ("convert an empty office block into 60 flats", "ease the shortage of homes for young people", "the flats will be too small"),
    ("install public water fountains in the town centre", "cut the number of plastic bottles thrown away", "the fountains will be expensive to keep clean"),
    ("open a youth club in the empty library building", "give teenagers a safe place to meet after school", "there is no long-term plan to pay the youth workers"),
    ("repair the harbour wall damaged in last winter's storms", "protect seafront homes from flooding", "the repair will only last a few years"),
    ("create a car-free zone around the primary school at drop-off time", "make the walk to school safer", "parents who have to drive will be inconvenienced"),
]  # fmt: skip

# (company, price, product, feature, praise, drawback)
PRODUCTS = [
    ("Brightleaf", "£1,299", "a foldable electric bike", "folds down to the size of a small suitcase", "its light frame", "a battery range of only about 40 kilometres"),
    ("Nordvik Audio", "£179", "wireless headphones with a week-long battery", "can run for seven days on a single charge", "the sound quality", "a tight fit for people with larger heads"),
    ("Kestrel Outdoor", "£229", "a two-person tent that pitches in one minute", "springs into shape as soon as it is unpacked", "how quickly it goes up", "a weight that makes it awkward to carry on long hikes"),
    ("Tandem Foods", "£4.50 a meal", "a range of ready meals made from surplus vegetables", "uses vegetables that supermarkets would otherwise throw away", "the flavour of the curries", "portions that are rather small for the price"),
    ("Lumen Home", "£149", "a smart thermostat for older houses", "works with heating systems that are more than thirty years old", "the simple set-up", "an app that is slow to respond"),
    ("Corvid Software", "£2.99 a month", "a budgeting app for students", "sorts spending into categories automatically", "its clear charts", "the lack of support for joint accounts"),
    ("Harbour Bikes", "£89", "a child's balance bike made from bamboo", "grows with the child thanks to an adjustable frame", "its sturdy build", "a seat that wears out quickly"),
    ("Pebble & Pine", "£12 for a starter kit", "a refillable cleaning spray system", "sends concentrated refills by post in paper sachets", "the reduction in plastic", "a scent that some testers found too strong"),
    ("Orla Kitchenware", "£45", "a non-stick frying pan without chemical coatings", "uses a ceramic surface instead of a chemical coating", "how evenly it heats", "a handle that gets hot"),
    ("Fieldnote", "£199", "an e-reader with a colour screen", "shows comics and maps in colour", "its sharp display", "a battery that drains faster than on black-and-white models"),
    ("Saltmarsh Coffee", "£320", "a compact espresso machine", "heats up in under a minute", "the quality of the espresso", "a small water tank that needs frequent refilling"),
    ("Quill & Co", "£24", "a pen that turns handwriting into text on a phone", "sends handwritten notes to an app as typed text", "its accuracy with neat handwriting", "trouble with joined-up writing"),
    ("Alder Robotics", "£399", "a robot lawnmower for small gardens", "maps the garden on its first run", "how quietly it works", "a tendency to get stuck on uneven ground"),
    ("Moorland Knitwear", "£85", "a jumper made from recycled wool", "is knitted from wool collected from old garments", "how soft it feels", "a limited range of sizes"),
]  # fmt: skip

# (noun phrase, past-tense verb phrase, participants, outcome, finding, caveat)
STUDIES = [
    ("a ten-minute walk after lunch", "took a ten-minute walk after lunch every day", "office workers", "afternoon concentration", "the walkers scored about 12 percent higher on attention tests in the afternoon", "the study lasted only six weeks"),
    ("reading aloud to young children", "read aloud to their children for twenty minutes a day", "families with children aged three to five", "early vocabulary", "children who were read to knew noticeably more words by the end", "the families volunteered, so they may have been unusually motivated"),
    ("taking notes by hand", "took notes by hand instead of on a laptop", "first-year students", "memory of lecture content", "students who wrote by hand recalled more key ideas a week later", "the difference between the groups was small"),
    ("keeping phones out of the bedroom", "left their phones outside the bedroom at night", "adults who reported poor sleep", "sleep quality", "participants fell asleep around fifteen minutes faster on average", "sleep was reported by the participants rather than measured"),
    ("a weekly gardening session", "joined a gardening session once a week", "care-home residents", "mood", "residents who gardened reported feeling less lonely", "only two care homes took part"),
    ("learning a musical instrument", "had a weekly piano lesson", "adults over sixty", "short-term memory", "the learners improved on memory tests more than the comparison group", "many participants dropped out before the end"),
    ("short breaks from screens", "took a five-minute break from their screens every hour", "software developers", "errors in their work", "the group taking breaks made fewer mistakes late in the day", "the developers knew they were being observed"),
    ("a daily glass of water before meals", "drank a glass of water before each meal", "adults trying to lose weight", "portion sizes", "the water drinkers ate slightly smaller portions", "the effect faded after the first month"),
    ("a weekly language exchange", "met a native speaker once a week for conversation practice", "adult language learners", "speaking confidence", "the learners who met a partner rated themselves as far more confident speakers", "confidence was self-reported"),
    ("standing desks", "used a standing desk for half of each working day", "call-centre staff", "back pain", "the standing-desk group reported less lower-back pain", "the effect was small and varied a lot between people"),
    ("a morning routine without screens", "avoided screens for the first hour after waking", "university students", "daily mood", "students reported feeling calmer and more focused", "most of the students were from a single university"),
    ("cooking classes for families", "attended a weekly family cooking class", "parents of primary school children", "how often families cook at home", "the families in the classes cooked at home about twice as often by the end", "the families were followed for only three months"),
]  # fmt: skip
UNIVERSITIES = [
    "the University of Northmoor", "Eastbrook Institute", "Caldwell University", "the Westfield Medical School",
    "Harrowgate College", "the Institute for Everyday Health", "the University of Southport", "Kingsley College",
    "the Ridgeway Research Centre", "Fairhaven University",
]  # fmt: skip

# (name, venue kind, positive, positive, negative)
VENUES = [
    ("Trattoria Bellini", "family-run Italian restaurant", "the fresh pasta was excellent", "the staff remembered our names by the second visit", "the dining room gets very noisy after eight"),
    ("Seaview Lodge", "small seaside hotel", "our room had a wonderful view of the bay", "breakfast was generous and cooked to order", "the walls are thin and we could hear the corridor"),
    ("the Old Harbour Museum", "local history museum", "the displays about the old harbour were fascinating", "entry was free for children", "several interactive screens were out of order"),
    ("Summit Walls", "climbing centre", "the routes are clearly graded for beginners", "the instructors were patient and encouraging", "the changing rooms are cramped"),
    ("The Copper Kettle", "vegetarian café", "the lentil soup was the best I've had", "prices were very reasonable", "there are only six tables, so expect to queue"),
    ("Hillside Meadows", "campsite in the hills", "the pitches were spacious and level", "the walking trails start right from the gate", "the showers were lukewarm"),
    ("Willow & Oak Books", "independent bookshop", "the staff recommendations were spot on", "there is a cosy reading corner with free tea", "the shop closes early on weekdays"),
    ("The Blue Door Bakery", "bakery", "the cinnamon buns were still warm", "they offer several gluten-free options", "the seating area is tiny"),
    ("Mossgate Gardens", "botanical garden", "the glasshouses were full of rare orchids", "there were plenty of shady benches", "the café was closed during our visit"),
    ("The Lantern Room", "small theatre", "the actors were superb", "tickets cost far less than in the city", "the seats have very little legroom"),
]  # fmt: skip

# (club, event, cause)
CLUB_EVENTS = [
    ("running club", "charity fun run", "the children's ward at the local hospital"),
    ("gardening society", "plant sale", "a new community orchard"),
    ("choir", "winter concert", "a local food bank"),
    ("youth football club", "summer tournament", "new kit for the under-tens"),
    ("book club", "second-hand book fair", "the village library"),
    ("photography group", "exhibition", "a wildlife rescue centre"),
    ("rowing club", "sponsored row", "a new boathouse roof"),
    ("cycling club", "sponsored coast-to-coast ride", "a local hospice"),
    ("drama group", "summer play", "repairs to the village hall"),
    ("allotment society", "harvest festival", "a school garden project"),
    ("swimming club", "sponsored swim", "lessons for children from low-income families"),
    ("knitting circle", "craft fair", "a homeless shelter"),
]  # fmt: skip

TEAMS = [
    "Millbrook Rovers",
    "Calder Bay United",
    "Fernley Athletic",
    "Port Alder Town",
    "Redfield Wanderers",
    "Thornbury City",
    "Halsey Down Rangers",
    "Elmstead Albion",
]

# (service, problem, earlier promise, request)
COMPLAINTS = [
    ("broadband", "the connection has dropped several times a day for three weeks", "an engineer would visit within five days", "a refund for the weeks without a reliable connection"),
    ("washing machine delivery", "the machine arrived with a dented door", "a replacement would be sent within a week", "a firm delivery date for the replacement"),
    ("gym membership", "I was charged twice in March", "the extra payment would be refunded", "the refund and a written confirmation"),
    ("train season ticket", "my ticket was cancelled without warning", "a new ticket would be posted to me", "a temporary ticket until the new one arrives"),
    ("sofa order", "only two of the three cushions were delivered", "the missing cushion would follow within days", "the missing cushion or a partial refund"),
    ("phone repair", "the screen stopped working again two days after the repair", "the repair came with a six-month guarantee", "a second repair free of charge"),
    ("hotel booking", "the room I paid for in advance was given to someone else", "I would be moved to a similar room nearby", "a refund of the difference I paid for the other hotel"),
    ("online grocery order", "half of the items in my order were substituted without asking", "substitutions would only happen with my consent", "a refund for the substituted items"),
    ("energy bill", "my bill is based on an estimate that is far too high", "a corrected bill would be sent after I submitted a meter reading", "a corrected bill based on my actual readings"),
    ("car service", "the warning light came back on the day after the service", "any fault would be fixed at no extra cost", "a free inspection this week"),
]  # fmt: skip

DOC_KINDS = {
    "council_report": "news report",
    "product_launch": "product announcement",
    "study_report": "research summary",
    "team_email": "email",
    "venue_review": "review",
    "club_newsletter": "newsletter item",
    "match_report": "match report",
    "complaint_letter": "complaint letter",
    "school_notice": "school notice",
}


def council_report(p: Picker) -> str:
    town = p.pick("towns", TOWNS)
    project, benefit, criticism = p.pick("projects", PROJECTS)
    day, month = p.any(DAYS), p.any(MONTHS)
    cost = p.any(["£1.2 million", "£2.4 million", "£850,000", "£3.1 million", "£640,000"])
    years = p.any(["eighteen months", "two years", "three years", "about a year"])
    sentences = [
        p.any(
            [
                f"On {day}, {town} town council voted to {project}.",
                f"Councillors in {town} have approved a plan to {project} after a long debate on {day}.",
                f"{town} council has agreed to {project}.",
            ]
        ),
        p.any(
            [
                f"The project is expected to cost around {cost} and to take {years} to complete.",
                f"Officials estimate the work will cost {cost}, with completion in {years}.",
            ]
        ),
        p.any(
            [
                f"Supporters say it will {benefit}.",
                f"The council leader said the scheme should {benefit}.",
            ]
        ),
        p.any(
            [
                f"However, some residents argue that {criticism}.",
                f"Not everyone is convinced: a local residents' group says that {criticism}.",
            ]
        ),
    ]
    if p.chance(0.7):
        sentences.append(p.any([
            f"A public consultation on the detailed design will open in {month}.",
            f"Residents can comment on the plans at the town hall until the end of {month}.",
            f"Work is due to begin in {month} if funding is confirmed.",
        ]))  # fmt: skip
    return " ".join(sentences)


def product_launch(p: Picker) -> str:
    company, price, product, feature, praise, drawback = p.pick("products", PRODUCTS)
    month = p.any(MONTHS)
    sentences = [
        p.any(
            [
                f"{company} has announced {product}, which goes on sale in {month}.",
                f"This week {company} unveiled {product}, due in shops from {month}.",
            ]
        ),
        p.any(
            [
                f"The company says its main selling point is that it {feature}.",
                f"According to {company}, what sets it apart is that it {feature}.",
            ]
        ),
        p.any(
            [
                f"It will cost {price}, slightly more than similar products.",
                f"The launch price is {price}, and the company hopes to lower it next year.",
            ]
        ),
        p.any(
            [
                f"Early reviewers praised {praise} but complained about {drawback}.",
                f"Testers were impressed by {praise}, although several mentioned {drawback}.",
            ]
        ),
    ]
    if p.chance(0.6):
        sentences.append(p.any([
            f"{company} says it will offer a two-year warranty.",
            "The product will be sold online first and in shops later in the year.",
        ]))  # fmt: skip
    return " ".join(sentences)


def study_report(p: Picker) -> str:
    noun, did, people, outcome, finding, caveat = p.pick("studies", STUDIES)
    uni = p.pick("universities", UNIVERSITIES)
    count, weeks = (
        p.any(["120", "86", "240", "64", "300"]),
        p.any(["six", "eight", "ten", "twelve"]),
    )
    sentences = [
        p.any(
            [
                f"Researchers at {uni} studied {count} {people} to find out whether {noun} improves {outcome}.",
                f"A new study from {uni} looked at how {noun} affects {outcome} in {people}.",
            ]
        ),
        p.any(
            [
                f"For {weeks} weeks, half of the participants {did}, while the rest carried on as usual.",
                f"One group {did} for {weeks} weeks; a second group changed nothing.",
            ]
        ),
        p.any([f"The researchers found that {finding}.", f"By the end, {finding}."]),
        p.any(
            [
                f"The authors caution that {caveat}, and they call for larger trials.",
                f"However, the team points out that {caveat}.",
            ]
        ),
    ]
    return " ".join(sentences)


def team_email(p: Picker) -> str:
    first, second, sender = p.rng.sample(p.part("names", NAMES), 3)
    day_from, day_to = p.rng.sample(DAYS, 2)
    topic = p.pick(
        "email_topics",
        [
            "the website redesign",
            "the spring newsletter",
            "the office move",
            "the client workshop",
            "the annual report",
            "the volunteer training day",
            "the customer survey",
            "the summer open day",
            "the new booking system",
            "the staff wellbeing week",
        ],
    )
    reason = p.any(
        [
            "two people are off sick",
            "the meeting room is being repainted",
            "we are still waiting for the budget figures",
            "the client asked for more time",
        ]
    )
    task_a = p.any(
        [
            "finish the first draft",
            "book the venue",
            "collect the survey results",
            "update the project timeline",
        ]
    )
    task_b = p.any(
        [
            "contact the printers",
            "prepare the slides",
            "check the figures with finance",
            "send the invitations",
        ]
    )
    body = [
        p.any(
            [
                f"Hi all, a quick update on {topic}.",
                f"Hello everyone, here is where we are with {topic}.",
            ]
        ),
        p.any(
            [
                f"Our planning meeting has moved from {day_from} to {day_to} because {reason}.",
                f"Because {reason}, we'll meet on {day_to} instead of {day_from}.",
            ]
        ),
        p.any(
            [
                f"Before then, {first} will {task_a} and {second} will {task_b}.",
                f"{first} has agreed to {task_a}, and {second} is going to {task_b}.",
            ]
        ),
        p.any(
            [
                "Please send any comments on the plan by the end of this week.",
                "If anything in the plan worries you, tell me before the meeting.",
            ]
        ),
    ]
    return " ".join(body) + f"\n\nThanks,\n{sender}"


def venue_review(p: Picker) -> str:
    name, kind, good_a, good_b, bad = p.pick("venues", VENUES)
    town = p.pick("towns", TOWNS)
    when = p.any(["last weekend", "in the spring", "twice this summer", "on a rainy Tuesday"])
    verdict = p.any([
        "Overall, we would happily go back.",
        "Despite that, it was worth the trip and we'd recommend it.",
        "It isn't perfect, but we'd give it four stars out of five.",
    ])  # fmt: skip
    sentences = [
        p.any(
            [
                f"We visited {name}, {a_or_an(kind)} {kind} in {town}, {when}.",
                f"{cap(when)} we went to {name}, {a_or_an(kind)} {kind} in {town}.",
            ]
        ),
        p.any([f"First of all, {good_a}.", f"The highlight was that {good_a}."]),
        p.any([f"On top of that, {good_b}.", f"We were also pleased that {good_b}."]),
        p.any([f"On the downside, {bad}.", f"Our one complaint is that {bad}."]),
        verdict,
    ]
    return " ".join(sentences)


def club_newsletter(p: Picker) -> str:
    club, event, cause = p.pick("club_events", CLUB_EVENTS)
    town = p.pick("towns", TOWNS)
    amount = p.any(["£1,240", "£3,500", "£860", "£2,015", "£4,300"])
    helper = p.pick("names", NAMES)
    sentences = [
        p.any(
            [
                f"The {town} {club}'s {event} raised {amount} for {cause} last weekend.",
                f"Last weekend's {event}, run by the {town} {club}, brought in {amount} for {cause}.",
            ]
        ),
        p.any(
            [
                f"Around {p.any(['80', '150', '200', '45'])} people took part despite the cold weather.",
                "Turnout was the highest in the event's history.",
            ]
        ),
        p.any(
            [
                f"Organisers thanked {helper}, who coordinated the volunteers.",
                f"Special thanks went to {helper} for organising the refreshments.",
            ]
        ),
        p.any(
            [
                f"The {club} is now looking for volunteers for next year's event.",
                "Anyone who would like to help next year can sign up at the next meeting.",
            ]
        ),
    ]
    return " ".join(sentences)


def match_report(p: Picker) -> str:
    home, away = p.rng.sample(p.part("teams", TEAMS), 2)
    scorer = p.pick("names", NAMES)
    score = p.any(["2-1", "3-2", "1-0", "4-1", "2-0"])
    sentences = [
        p.any(
            [
                f"{home} beat {away} {score} on Saturday in front of a full home crowd.",
                f"In Saturday's local derby, {home} won {score} against {away}.",
            ]
        ),
        p.any(
            [
                f"{away} took an early lead, but {home} equalised before half-time.",
                "The first half was scrappy, with few chances for either side.",
            ]
        ),
        p.any(
            [
                f"The winning goal came from {scorer}, a substitute, with ten minutes left.",
                f"{scorer} scored the decisive goal from a corner late in the game.",
            ]
        ),
        p.any(
            [
                f"The result lifts {home} to third place in the league.",
                f"{away}'s manager said his team would learn from the defeat.",
            ]
        ),
    ]
    return " ".join(sentences)


def complaint_letter(p: Picker) -> str:
    service, problem, promise, request = p.pick("complaints", COMPLAINTS)
    name = p.pick("names", NAMES)
    opener = p.any(["Dear Customer Services,", "To whom it may concern,", "Hello,"])
    body = " ".join([
        p.any([f"I am writing to complain about my {service}.", f"I'd like to make a complaint about my {service}."]),
        p.any([f"In short, {problem}.", f"The problem is that {problem}."]),
        p.any([
            f"When I called, I was told that {promise}, but nothing has happened.",
            f"Your staff assured me that {promise}; I am still waiting.",
        ]),
        p.any([f"I am now asking for {request}.", f"Please arrange {request} as soon as possible."]),
        "I look forward to your reply.",
    ])  # fmt: skip
    return f"{opener}\n\n{body}\n\nYours sincerely,\n{name}"


def school_notice(p: Picker) -> str:
    town = p.pick("towns", TOWNS)
    change, reason = p.pick("school_changes", [
        ("the school day will start at 8:40 instead of 8:50", "to give more time for reading"),
        ("mobile phones must be handed in at the start of each day", "to reduce distractions in lessons"),
        ("the canteen will offer a free breakfast club", "after parents asked for earlier childcare"),
        ("homework will be set online rather than on paper", "so that parents can see what has been set"),
        ("Year 5 pupils will take part in a weekly outdoor learning session", "to help them settle in"),
        ("the school will close at 1:30 on the last Friday of each month", "to give teachers time for training"),
        ("every class will have a weekly library visit", "to encourage reading for pleasure"),
        ("the school uniform will include a cheaper plain jumper", "to keep costs down for families"),
        ("pupils will be able to borrow musical instruments for free", "so that every child can try an instrument"),
        ("a walking bus will run from the park to the school gates", "to reduce traffic outside the school"),
    ])  # fmt: skip
    month = p.any(MONTHS)
    sentences = [
        f"Dear parents and carers of {town} Primary School, from {month}, {change}.",
        p.any([f"We are making this change {reason}.", f"The governors agreed to this {reason}."]),
        p.any(
            [
                "A short information evening will be held in the school hall next Thursday.",
                "Please read the attached letter for the full details.",
            ]
        ),
        p.any(
            [
                "If you have any questions, contact the school office.",
                "We welcome your feedback through the parent survey.",
            ]
        ),
    ]
    return " ".join(sentences)


FRAMES: list[Callable[[Picker], str]] = [
    council_report, product_launch, study_report, team_email, venue_review,
    club_newsletter, match_report, complaint_letter, school_notice,
]  # fmt: skip

# Hand-written general-knowledge passages; each one is a single subject.

# (topic, passage): hand-written general knowledge. The topic is the subject key, so a topic that
# is also an explanation concept (say "compound interest") is held out in both or in neither.
KNOWLEDGE_PASSAGES: list[tuple[str, str]] = [
    (
        "honeybees",
        "Honeybees communicate the location of food through a movement called the waggle dance. A worker returning to the hive walks in a figure-of-eight pattern, waggling her body during the straight part of the run. The angle of that run relative to vertical tells other bees the direction of the flowers relative to the sun, and the length of the waggle indicates the distance. The behaviour was decoded by the Austrian scientist Karl von Frisch, who shared a Nobel Prize for the work in 1973.",
    ),
    (
        "the Great Barrier Reef",
        "The Great Barrier Reef, off the coast of Queensland in Australia, is the largest coral reef system in the world. It stretches for more than 2,000 kilometres and is made up of thousands of individual reefs and hundreds of islands. Corals are colonies of tiny animals that build hard skeletons from calcium carbonate. When the water becomes too warm, corals expel the algae that live inside them and turn white, a process known as bleaching. Repeated bleaching events in recent decades have raised serious concern about the reef's future.",
    ),
    (
        "sourdough",
        "Sourdough bread is leavened by a starter, a mixture of flour and water that has been colonised by wild yeasts and lactic acid bacteria. The yeasts produce carbon dioxide, which makes the dough rise, while the bacteria produce acids that give the bread its tangy flavour. Because this fermentation is slower than with commercial yeast, sourdough often takes a day or more to make. Bakers keep their starters alive for years by regularly feeding them with fresh flour and water.",
    ),
    (
        "the printing press",
        "The printing press with movable metal type was developed by Johannes Gutenberg in Mainz around 1450. Before it, books in Europe were mostly copied by hand, which made them slow to produce and expensive. Printing allowed texts to be reproduced quickly and in large numbers. Within a few decades, printing shops had spread to cities across Europe, and the wider availability of books helped spread new ideas during the Renaissance and the Reformation.",
    ),
    (
        "a credit score",
        "A credit score is a number that lenders use to estimate how likely a person is to repay borrowed money. It is calculated from information in a credit report, such as whether bills have been paid on time, how much of the available credit is being used, and how long the person has had credit accounts. A higher score usually means better interest rates on loans and mortgages. People can often improve their score by paying bills on time and keeping credit card balances low.",
    ),
    (
        "sleep cycles",
        "Sleep happens in cycles of roughly ninety minutes. Each cycle moves through lighter stages of sleep into deep sleep and then into rapid eye movement, or REM, sleep, when most vivid dreaming occurs. Deep sleep is especially important for physical recovery, while REM sleep appears to play a role in memory and emotional processing. Most adults need between seven and nine hours of sleep a night, and regularly getting less is linked to poorer concentration and health.",
    ),
    (
        "the Amazon rainforest",
        "The Amazon rainforest covers much of the Amazon basin in South America, spanning parts of nine countries, with the largest share in Brazil. It is home to an enormous variety of plants and animals, many of which are found nowhere else. The forest also stores large amounts of carbon and influences rainfall across the continent. Clearing land for farming and logging has reduced its area, and scientists warn that further loss could change the region's climate.",
    ),
    (
        "version control",
        "Version control systems such as Git keep a history of every change made to a set of files. Each saved snapshot, called a commit, records what changed, who changed it and when. Developers can create branches to work on new features without disturbing the main version, and later merge their work back in. If a change introduces a bug, the history makes it possible to find when it happened and to return to an earlier state.",
    ),
    (
        "the Olympic Games",
        "The Olympic Games began in ancient Greece, where athletic contests were held at Olympia in honour of the god Zeus. The ancient games took place every four years for more than a thousand years. The modern Olympic movement was founded by the French educator Pierre de Coubertin, and the first modern Games were held in Athens in 1896. Today the Summer and Winter Games alternate, so that one or the other takes place every two years.",
    ),
    (
        "compost heaps",
        "Composting turns food scraps and garden waste into a dark, crumbly material that improves soil. Microorganisms break down the organic matter, and they work best with a mix of green materials, such as vegetable peelings and grass cuttings, and brown materials, such as dry leaves and cardboard. A compost heap needs air and some moisture, so turning it every few weeks speeds things up. Depending on the conditions, compost can be ready in a few months to a year.",
    ),
    (
        "compound interest",
        "Interest can be simple or compound. Simple interest is paid only on the original amount, while compound interest is also paid on the interest already earned. Over short periods the difference is small, but over many years compounding can make savings grow much faster. The same principle works against borrowers: unpaid interest on a credit card balance is added to the debt, so the amount owed can grow quickly if only minimum payments are made.",
    ),
    (
        "the violin family",
        "The violin family includes the violin, the viola, the cello and the double bass. All four have four strings and are usually played with a bow, although players sometimes pluck the strings instead. The larger the instrument, the lower its range: the violin plays the highest notes and the double bass the lowest. In an orchestra, the string section is usually the largest group of players and often carries the main melody.",
    ),
    (
        "volcanoes",
        "Volcanoes form where molten rock, called magma, rises to the Earth's surface. Many are found along the edges of tectonic plates, particularly around the Pacific Ocean in a zone known as the Ring of Fire. When pressure builds up, magma can erupt as flowing lava or explode as ash and gas. Although eruptions can be destructive, volcanic soils are often very fertile, which is one reason people have long farmed near volcanoes.",
    ),
    (
        "walking",
        "Walking is one of the simplest forms of exercise. Regular brisk walking strengthens the heart and lungs, helps control weight and can improve mood. Health organisations commonly recommend about 150 minutes of moderate activity a week, which can be met with a thirty-minute walk on five days. Because it needs no special equipment and puts little strain on the joints, walking suits people of most ages and fitness levels.",
    ),
    (
        "the Silk Road",
        "The Silk Road was a network of trade routes that linked China with Central Asia, the Middle East and Europe for well over a thousand years. Merchants carried silk, spices, paper, metals and many other goods along it, usually passing them from trader to trader rather than travelling the whole distance. Ideas, religions and technologies travelled along the same routes, which made the Silk Road important for cultural exchange as well as commerce.",
    ),
    (
        "a budget",
        "A budget is a plan for how money will be spent and saved over a period, usually a month. The first step is to list all sources of income and then all regular expenses, such as rent, bills, food and transport. Comparing the two shows whether there is money left over or a shortfall. Many people use a simple rule, such as setting aside a fixed share of income for savings before spending on anything else.",
    ),
    (
        "jet lag",
        "Jet lag happens when the body's internal clock is out of step with the time zone a traveller has arrived in. Symptoms include tiredness during the day, difficulty sleeping at night, poor concentration and stomach problems. It is usually worse after flying east than west. Getting daylight at the right times, staying hydrated and shifting sleep times gradually before the trip can help the body adjust more quickly.",
    ),
    (
        "recycling",
        "Recycling turns used materials into new products. Paper, glass, metal and some plastics can be collected, sorted and processed, which saves raw materials and often energy. However, not all plastics can be recycled easily, and items contaminated with food may be rejected. For this reason, many environmental groups stress reducing and reusing first, with recycling as the next best option for what remains.",
    ),
]
