"""Fixed vocabularies the generator and simulator draw from (written for this project).

Kept as plain tuples so draws are reproducible: the order of every list is part of the seed contract,
so appending is fine but reordering changes every generated dataset.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Country:
    """A market: how often customers come from it and how its phones and postcodes look."""

    code: str
    weight: float
    phone_prefix: str
    cities: tuple[str, ...]
    postal: str  # pattern: '#' a digit, 'A' an upper-case letter, anything else literal


COUNTRIES: tuple[Country, ...] = (
    Country(
        "US", 36, "+1", ("New York", "Chicago", "Austin", "Seattle", "Denver", "Boston", "Atlanta"), "#####"
    ),
    Country("GB", 14, "+44", ("London", "Manchester", "Leeds", "Bristol", "Glasgow", "Cardiff"), "A# #AA"),
    Country("DE", 12, "+49", ("Berlin", "Hamburg", "München", "Köln", "Leipzig"), "#####"),
    Country("FR", 9, "+33", ("Paris", "Lyon", "Marseille", "Toulouse", "Nantes"), "#####"),
    Country("NL", 5, "+31", ("Amsterdam", "Rotterdam", "Utrecht", "Eindhoven"), "#### AA"),
    Country("ES", 5, "+34", ("Madrid", "Barcelona", "Valencia", "Sevilla"), "#####"),
    Country("IT", 5, "+39", ("Roma", "Milano", "Torino", "Napoli", "Bologna"), "#####"),
    Country("CA", 6, "+1", ("Toronto", "Vancouver", "Montréal", "Calgary"), "A#A #A#"),
    Country("AU", 4, "+61", ("Sydney", "Melbourne", "Brisbane", "Perth"), "####"),
    Country("IE", 1.5, "+353", ("Dublin", "Cork", "Galway"), "A## A#A#"),
    Country("SE", 1.5, "+46", ("Stockholm", "Göteborg", "Malmö"), "### ##"),
    Country("JP", 1, "+81", ("Tokyo", "Osaka", "Kyoto"), "###-####"),
)
COUNTRY_BY_CODE = {c.code: c for c in COUNTRIES}

FIRST_NAMES = (
    "Olivia",
    "Liam",
    "Emma",
    "Noah",
    "Ava",
    "Lucas",
    "Mia",
    "Leon",
    "Sophie",
    "Hugo",
    "Chloé",
    "Mateo",
    "Lucía",
    "Giulia",
    "Marco",
    "Anna",
    "Jan",
    "Saskia",
    "Finn",
    "Aoife",
    "Seán",
    "Freya",
    "Oscar",
    "Isla",
    "Amelia",
    "Jack",
    "Charlotte",
    "James",
    "Léa",
    "Louis",
    "Zoë",
    "Daan",
    "Emily",
    "Ethan",
    "Hannah",
    "Max",
    "Sofia",
    "Alejandro",
    "Elena",
    "Björn",
    "Astrid",
    "Yuki",
    "Haruto",
    "Grace",
    "Henry",
    "Ines",
    "Tomás",
    "Nora",
    "Elias",
    "Maya",
    "Arjun",
    "Priya",
    "Chen",
    "Fatima",
    "Omar",
    "Kofi",
    "Amara",
    "Dmitri",
)
LAST_NAMES = (
    "Smith",
    "Johnson",
    "Brown",
    "Taylor",
    "Wilson",
    "Müller",
    "Schmidt",
    "Schneider",
    "Martin",
    "Bernard",
    "Dubois",
    "de Vries",
    "Jansen",
    "Bakker",
    "García",
    "Fernández",
    "López",
    "Rossi",
    "Russo",
    "Bianchi",
    "Murphy",
    "O'Brien",
    "Kelly",
    "Andersson",
    "Johansson",
    "Tanaka",
    "Suzuki",
    "Nguyen",
    "Patel",
    "Khan",
    "Walker",
    "Evans",
    "Roberts",
    "Thompson",
    "White",
    "Hughes",
    "Clarke",
    "Moreau",
    "Laurent",
    "Weber",
    "Fischer",
    "Romano",
    "Costa",
    "Silva",
    "Kowalski",
    "Novak",
    "Lee",
    "Kim",
    "Okafor",
    "Mensah",
)
EMAIL_DOMAINS = ("example.com", "example.org", "example.net", "mail.example", "post.example")
STREETS = (
    "High Street",
    "Main Street",
    "Station Road",
    "Church Lane",
    "Park Avenue",
    "Mill Road",
    "Oak Street",
    "Maple Avenue",
    "Hauptstraße",
    "Rue de la Paix",
    "Calle Mayor",
    "Via Roma",
    "Kerkstraat",
    "King Street",
    "Queen Street",
    "Elm Road",
    "Harbour Way",
    "Bahnhofstraße",
    "Avenue Victor Hugo",
    "Storgatan",
)
LINE2 = ("Apt 1", "Apt 4B", "Flat 2", "Suite 300", "Floor 3", "Unit 7", "c/o Reception")

# department -> ((category name, item noun), ...); price range in USD minor units
DEPARTMENTS: tuple[tuple[str, tuple[int, int], tuple[tuple[str, str], ...]], ...] = (
    (
        "Apparel",
        (1500, 12000),
        (
            ("T-Shirts", "T-Shirt"),
            ("Jeans", "Jeans"),
            ("Jackets", "Jacket"),
            ("Dresses", "Dress"),
            ("Sneakers", "Sneakers"),
        ),
    ),
    (
        "Home",
        (1000, 20000),
        (
            ("Bedding", "Duvet Cover"),
            ("Cookware", "Skillet"),
            ("Lighting", "Lamp"),
            ("Storage", "Storage Box"),
        ),
    ),
    (
        "Electronics",
        (1500, 30000),
        (
            ("Headphones", "Headphones"),
            ("Chargers", "Charger"),
            ("Speakers", "Speaker"),
            ("Keyboards", "Keyboard"),
        ),
    ),
    (
        "Sports",
        (1000, 25000),
        (("Yoga", "Yoga Mat"), ("Cycling", "Bike Light"), ("Running", "Running Vest"), ("Camping", "Tent")),
    ),
    (
        "Beauty",
        (500, 8000),
        (("Skincare", "Face Cream"), ("Haircare", "Shampoo"), ("Fragrance", "Eau de Parfum")),
    ),
    ("Books", (800, 4500), (("Fiction", "Novel"), ("Cookbooks", "Cookbook"), ("Travel", "Travel Guide"))),
    (
        "Toys",
        (800, 9000),
        (("Puzzles", "Puzzle"), ("Building Sets", "Building Set"), ("Plush", "Plush Bear")),
    ),
    ("Garden", (500, 9000), (("Planters", "Planter"), ("Tools", "Pruner"), ("Seeds", "Seed Kit"))),
)
PRODUCT_LINES = (
    "Nova",
    "Atlas",
    "Terra",
    "Lumen",
    "Vela",
    "Orbit",
    "Cedar",
    "Fjord",
    "Sierra",
    "Harbor",
    "Kiln",
    "Ember",
)
PRODUCT_ADJECTIVES = (
    "Classic",
    "Everyday",
    "Premium",
    "Compact",
    "Organic",
    "Recycled",
    "Deluxe",
    "Essential",
    "Light",
    "Pro",
)

PAYMENT_FAILURES = ("card_declined", "insufficient_funds", "expired_card", "authentication_failed")
REFUND_REASONS = ("damaged", "wrong_size", "not_as_described", "changed_mind", "late_delivery")
REFERRERS = (None, None, "https://www.google.example/", "https://news.example/", "newsletter", "instagram")
DEVICES = ("mobile", "desktop", "tablet")
DEVICE_WEIGHTS = (55, 38, 7)
