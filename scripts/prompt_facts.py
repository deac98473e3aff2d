# ruff: noqa: E501  (hand-written material: one entry per line reads better than wrapped strings)
"""Hand-written material for short factual questions (see `build_prompts.py`).

Each relation maps a subject to a few phrasings of the question; `{x}` is the subject. Only the
question is shipped, never an answer, but every question has one clear, well-known answer.
"""

from __future__ import annotations

COUNTRIES = [
    "Peru", "Kenya", "Canada", "Australia", "Japan", "Norway", "Egypt", "Argentina", "Vietnam",
    "Portugal", "Morocco", "New Zealand", "Chile", "Finland", "Thailand", "Ghana", "Hungary",
    "Mongolia", "Ireland", "Colombia", "South Korea", "Turkey", "Poland", "Nigeria", "Sweden",
    "Indonesia", "Austria", "Iceland", "Cuba", "Nepal", "Switzerland", "Brazil", "Greece",
    "Denmark", "India", "Mexico",
]  # fmt: skip

BOOKS = [
    "Pride and Prejudice", "Nineteen Eighty-Four", "War and Peace", "The Old Man and the Sea",
    "To Kill a Mockingbird", "Don Quixote", "Frankenstein", "One Hundred Years of Solitude",
    "The Great Gatsby", "Jane Eyre", "Great Expectations", "The Odyssey", "Moby-Dick",
    "Crime and Punishment", "The Hobbit", "Things Fall Apart", "Wuthering Heights",
    "The Little Prince", "Brave New World", "Anna Karenina", "Middlemarch", "Dracula",
    "The Catcher in the Rye", "Beloved", "The Divine Comedy", "Les Misérables",
]  # fmt: skip

ELEMENTS = [
    "gold", "silver", "iron", "sodium", "potassium", "lead", "copper", "tin", "mercury",
    "helium", "neon", "calcium", "zinc", "oxygen", "nitrogen", "carbon", "hydrogen", "chlorine",
    "magnesium", "sulphur", "uranium", "platinum", "aluminium", "silicon", "tungsten",
]  # fmt: skip

ACRONYMS = [
    "NASA", "UNESCO", "DNA", "HTML", "GPS", "USB", "CPU", "PDF", "NATO", "UNICEF",
    "RAM", "LED", "scuba", "radar", "laser", "HTTP", "ATM", "FAQ", "BMI", "VAT", "GDP", "CEO", "URL",
]  # fmt: skip

PAINTINGS = [
    "the Mona Lisa", "The Starry Night", "Guernica", "The Persistence of Memory", "The Scream",
    "Girl with a Pearl Earring", "The Birth of Venus", "The Night Watch", "Water Lilies",
    "The Last Supper", "American Gothic", "The Great Wave off Kanagawa", "Sunflowers",
    "The Garden of Earthly Delights", "Las Meninas",
]  # fmt: skip

# "did ..." completions, answered by a year.
EVENTS = [
    "the Berlin Wall fall", "the first Moon landing take place", "the Titanic sink",
    "the Second World War end", "the French Revolution begin", "the first modern Olympic Games take place",
    "Christopher Columbus first reach the Americas", "the Wright brothers make their first powered flight",
    "the Great Fire of London happen", "Nelson Mandela become president of South Africa",
    "euro banknotes first enter circulation", "the Soviet Union dissolve",
    "the first iPhone go on sale", "the Battle of Hastings take place",
    "Yuri Gagarin become the first person in space",
]  # fmt: skip

# "Who ...?" completions answered by one person.
DISCOVERIES = [
    "discovered penicillin", "developed the theory of general relativity",
    "proposed the theory of evolution by natural selection", "painted the ceiling of the Sistine Chapel",
    "was the first person to walk on the Moon", "wrote the play Romeo and Juliet",
    "composed the Four Seasons", "formulated the laws of motion", "discovered radium and polonium",
    "developed the first successful smallpox vaccine", "created the World Wide Web",
    "composed the Moonlight Sonata", "wrote the first published algorithm for a computing machine",
    "proposed that the Earth orbits the Sun in a 16th-century book", "founded modern nursing",
    "discovered the structure of DNA with Francis Crick",
]  # fmt: skip

DISHES = [
    "guacamole", "hummus", "tzatziki", "pesto", "risotto", "falafel", "paella", "gazpacho",
    "polenta", "tabbouleh", "miso soup", "baba ganoush", "a traditional Caesar salad", "tofu",
    "pico de gallo", "fondue",
]  # fmt: skip

UNIT_PAIRS = [
    ("centimetres", "a metre"), ("grams", "a kilogram"), ("minutes", "a day"), ("seconds", "an hour"),
    ("days", "a leap year"), ("millilitres", "a litre"), ("ounces", "a pound"), ("feet", "a mile"),
    ("inches", "a foot"), ("weeks", "a year"), ("metres", "a kilometre"), ("bits", "a byte"),
    ("degrees", "a right angle"), ("players", "a football team on the pitch"),
    ]  # fmt: skip

LANDMARKS = [
    "Machu Picchu", "the Taj Mahal", "Angkor Wat", "the Acropolis", "Petra", "Chichen Itza",
    "the Alhambra", "Uluru", "the Colosseum", "Stonehenge", "the Forbidden City", "the Parthenon",
    "Mount Kilimanjaro", "the Sagrada Família", "the Golden Gate Bridge", "Table Mountain",
]  # fmt: skip

# Stand-alone questions (one subject each).
MISC_QUESTIONS = [
    "What is the boiling point of water at sea level in degrees Celsius?",
    "Which planet is known as the Red Planet?",
    "What is the largest ocean on Earth?",
    "What gas do plants absorb from the air during photosynthesis?",
    "Which is the longest river in Africa?",
    "What is the hardest natural substance?",
    "How long does it take light from the Sun to reach Earth, roughly?",
    "Which organ in the human body produces insulin?",
    "What is the smallest prime number?",
    "What is the freezing point of water in Fahrenheit?",
    "What is the largest desert in the world?",
    "What is the tallest mountain in Africa?",
    "How many continents are there?",
    "What is the main language spoken in Brazil?",
    "What is the largest mammal on Earth?",
    "Which blood type is known as the universal donor?",
    "What is the square root of 144?",
    "What is the chemical formula for table salt?",
    "Which instrument has 88 keys?",
    "What is the closest star to Earth?",
    "What is the largest organ of the human body?",
    "In which city is the Eiffel Tower?",
    "What is the most widely spoken language in the world by number of native speakers?",
    "How many sides does a dodecagon have?",
    "What is 15 percent of 200?",
    "What does a thermometer measure?",
    "Which vitamin does the skin make when exposed to sunlight?",
    "What is the capital of the Canadian province of Quebec?",
    "Which element has the atomic number 1?",
    "What is the longest bone in the human body?",
    "Which metal is liquid at room temperature?",
    "What colour do you get by mixing blue and yellow paint?",
    "How many strings does a standard guitar have?",
    "Which country gifted the Statue of Liberty to the United States?",
    "What is the name of the galaxy that contains our solar system?",
    "What is the normal human body temperature in degrees Celsius?",
    "Which sea has such salty water that people float in it easily?",
    "What is the largest island in the world?",
    "Which bird is the fastest in a dive?",
    "What is the sum of the interior angles of a triangle?",
    "Which animal is known as the ship of the desert?",
    "How many sides does a hexagon have?",
    "How many squares are there on a chessboard?",
    "How many keys does a standard piano have?",
    "How many bones are there in the adult human body?",
    "How many chambers does the human heart have?",
    "How many legs does a spider have?",
    "What is the largest planet in our solar system?",
    "Which planet is closest to the Sun?",
    "What is the main gas in the air we breathe?",
    "Which continent is the Sahara Desert on?",
]
