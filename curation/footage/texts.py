"""What the generated speakers say, and in which espeak-ng voices (DESIGN.md §5).

The sentences were written for this project (nothing is quoted from anywhere), short
enough that a scene holds one or two, and plain enough that espeak-ng pronounces them
from its own rules. Several languages and accents matter because the corpus is
multilingual and the speech-activity labels must not depend on English phonology.
"""

from __future__ import annotations

# Keyed by ISO 639-1 language code.
SENTENCES: dict[str, tuple[str, ...]] = {
    "en": (
        "The kettle is warm, so let us have a cup of tea.",
        "I walked along the river until the sun went down.",
        "Please put the blue folder on the second shelf.",
        "My brother fixes old bicycles in his garage.",
        "We missed the early train, but the next one was almost empty.",
        "Could you tell me where the nearest library is?",
        "The garden looks much better after the rain.",
        "She painted the small boat a bright shade of yellow.",
        "Every morning the baker opens his shop at six.",
        "Nobody expected the concert to start on time.",
    ),
    "de": (
        "Heute Abend kochen wir eine große Gemüsesuppe.",
        "Der Zug nach Hamburg hat leider zehn Minuten Verspätung.",
        "Meine Schwester spielt jeden Sonntag Tennis im Park.",
        "Kannst du mir bitte das Salz herüberreichen?",
        "Im Herbst fallen die bunten Blätter von den Bäumen.",
        "Wir haben das alte Fahrrad im Keller gefunden.",
        "Das Museum ist am Montag geschlossen.",
        "Nach dem Regen riecht der Wald ganz frisch.",
    ),
    "fr": (
        "Nous allons au marché tous les samedis matin.",
        "Le chat dort sur le canapé depuis midi.",
        "Peux-tu fermer la fenêtre, s'il te plaît?",
        "Mon grand-père cultive des tomates dans son jardin.",
        "Le musée ouvre ses portes à dix heures.",
        "Il pleut beaucoup en novembre dans cette région.",
        "Elle a oublié son parapluie dans le bus.",
        "Nous avons mangé une tarte aux pommes délicieuse.",
    ),
    "es": (
        "Mañana vamos a visitar a mis abuelos en el pueblo.",
        "El perro corre feliz por la playa.",
        "¿Sabes a qué hora sale el próximo autobús?",
        "Mi hermana trabaja en una pequeña librería del centro.",
        "En verano comemos mucha fruta fresca.",
        "La cocina huele a pan recién hecho.",
        "Hemos pintado la puerta de color verde.",
        "El partido de fútbol empieza a las ocho.",
    ),
    "it": (
        "Domani andiamo al mare con tutta la famiglia.",
        "Il gatto dorme tranquillo sotto il tavolo.",
        "Mi puoi passare il pane, per favore?",
        "Mia nonna prepara la pasta fresca ogni domenica.",
        "La biblioteca chiude alle sette di sera.",
        "Abbiamo fatto una lunga passeggiata in montagna.",
        "Il treno per Roma parte dal binario tre.",
        "In primavera il giardino è pieno di fiori.",
    ),
    "pt": (
        "Amanhã vamos almoçar na casa da minha tia.",
        "O cão brinca no jardim com uma bola vermelha.",
        "Podes fechar a porta, por favor?",
        "O meu irmão estuda música na universidade.",
        "No inverno bebemos chá quente todas as noites.",
        "A padaria da esquina abre muito cedo.",
        "Encontrámos uma pedra bonita na praia.",
        "O autocarro chegou atrasado outra vez.",
    ),
    "nl": (
        "Morgen fietsen we samen naar het strand.",
        "De kat slaapt de hele middag in de zon.",
        "Wil je mij het zout even aangeven?",
        "Mijn zus werkt in een kleine boekwinkel.",
        "In de winter drinken we vaak warme chocolademelk.",
        "De trein naar Utrecht vertrekt over vijf minuten.",
        "We hebben een nieuwe tafel voor de keuken gekocht.",
        "Na de regen ruikt het bos heerlijk fris.",
    ),
}

# (espeak-ng voice, ISO 639-1 code of the sentences it speaks). Voice names are
# espeak-ng voice files; several English accents so that "English" is not one voice.
VOICES: tuple[tuple[str, str], ...] = (
    ("en", "en"),
    ("en-us", "en"),
    ("en-gb-scotland", "en"),
    ("en-gb-x-rp", "en"),
    ("en-029", "en"),
    ("en-us-nyc", "en"),
    ("de", "de"),
    ("fr", "fr"),
    ("fr-be", "fr"),
    ("es", "es"),
    ("es-419", "es"),
    ("it", "it"),
    ("pt", "pt"),
    ("pt-br", "pt"),
    ("nl", "nl"),
)

# espeak-ng voice variants (files in espeak-ng-data/voices/!v), appended as "voice+f3":
# they change pitch, formants and breathiness, so one language gets several speakers.
FEMALE_VARIANTS: tuple[str, ...] = ("f1", "f2", "f3", "f4", "f5")
MALE_VARIANTS: tuple[str, ...] = ("m1", "m2", "m3", "m4", "m5", "m6", "m7")
VARIANTS: tuple[str, ...] = FEMALE_VARIANTS + MALE_VARIANTS


def voices_for(language: str) -> tuple[str, ...]:
    """Base voices (no variant) that speak ``language`` (ISO 639-1)."""
    return tuple(voice for voice, code in VOICES if code == language)


def speaker(voice: str, variant: str | None) -> str:
    """The voice name ``synthesize`` takes: ``"en-us+f3"``, or the plain voice."""
    return f"{voice}+{variant}" if variant else voice
