"""A witness's description as attribute terms: from options (`--gender female --upper red`) or from a phrase
("woman with a backpack, red top, dark trousers"; English, Ukrainian and Russian words).

The phrase parser knows a small vocabulary: genders, ages, bags, hats, hair and sleeve length, garments (each of
the upper or the lower body) and colours, plus filler words ("a", "with", "in", "з", "в"...). A colour is said
before its garment ("red top", "червона куртка"). Every other word is refused with the list of unknown words:
a description that silently dropped "bald" or "orange" would return the wrong people as if they matched.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from vsearch.attributes import AGES, LOWER_COLORS, UPPER_COLORS
from vsearch.catalog.attributes import Term
from vsearch.errors import InputError

CARRIED = ("backpack", "bag", "handbag")
GENDERS = ("female", "male")


@dataclass(frozen=True)
class Description:
    """What is known about a person; None / empty: not said. Colours of one part are alternatives ("dark" is
    black or blue); `carrying` are all required, `not_carrying` all excluded."""

    female: bool | None = None
    age: str | None = None
    carrying: tuple[str, ...] = ()
    not_carrying: tuple[str, ...] = ()
    hat: bool | None = None
    long_hair: bool | None = None
    short_sleeves: bool | None = None
    short_lower: bool | None = None
    skirt: bool | None = None
    upper: tuple[str, ...] = ()
    lower: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.age is not None and self.age not in AGES:
            raise InputError(f"unknown age {self.age!r}; expected one of {', '.join(AGES)}")
        for what in (*self.carrying, *self.not_carrying):
            if what not in CARRIED:
                raise InputError(f"unknown carried item {what!r}; expected one of {', '.join(CARRIED)}")
        both = set(self.carrying) & set(self.not_carrying)
        if both:
            raise InputError(f"{sorted(both)} both carried and not carried")
        for part, names, known in (("upper", self.upper, UPPER_COLORS), ("lower", self.lower, LOWER_COLORS)):
            for c in names:
                if c not in known:
                    raise InputError(
                        f"the attribute model knows no {part}-body colour {c!r}; it knows {', '.join(known)}"
                    )
        if not self.terms():
            raise InputError("the description says nothing the attribute model knows (gender, age, bags, hat, "
                             "hair, sleeves, shorts, skirt, upper or lower colour)")  # fmt: skip

    def terms(self) -> list[Term]:
        """The factors of the joint probability a sighting is ranked by."""
        out = []
        for name in ("female", "hat", "long_hair", "short_sleeves", "short_lower", "skirt"):
            v = getattr(self, name)
            if v is not None:
                out.append(Term((name,), negated=not v))
        if self.age:
            out.append(Term((f"age_{self.age}",)))
        out += [Term((c,)) for c in self.carrying]
        out += [Term((c,), negated=True) for c in self.not_carrying]
        if self.upper:
            out.append(Term(tuple(f"upper_{c}" for c in self.upper)))
        if self.lower:
            out.append(Term(tuple(f"lower_{c}" for c in self.lower)))
        return out

    def summary(self) -> dict[str, object]:
        """The said attributes only, as plain data."""
        return {k: v for k, v in self.__dict__.items() if v not in (None, ())}


def describe(phrase: str | None, gender: str | None, carrying: Sequence[str] | None, upper: str | None,
             lower: str | None, age: str | None) -> Description:  # fmt: skip
    """A Description from a phrase or from options (not both); InputError naming what is wrong."""
    options = any(v for v in (gender, carrying, upper, lower, age))
    if phrase is not None and options:
        raise InputError("give a description phrase or attribute options (--gender, --carrying, ...), not both")
    if phrase is not None:
        return parse_description(phrase)
    if gender is not None and gender not in GENDERS:
        raise InputError(f"unknown gender {gender!r}; expected one of {', '.join(GENDERS)}")
    return Description(
        female=None if gender is None else gender == "female", age=age,
        carrying=tuple(dict.fromkeys(c for v in carrying or () for c in v.split(",") if c)),
        upper=() if upper is None else (upper,), lower=() if lower is None else (lower,),
    )  # fmt: skip



def describe_search(phrase: str | None, gender: str | None, carrying: Sequence[str] | None,
                    age: str | None) -> Description | None:  # fmt: skip
    """An image search's description (its phrase or options), None when none is given; InputError as `describe`.
    (An image search's --upper / --lower are its colour-name filters: a description's colours are in its phrase.)"""
    if phrase is None and not any(v for v in (gender, carrying, age)):
        return None
    return describe(phrase, gender, carrying, None, None, age)


def said(**fields: object) -> dict[str, object]:
    """The description fields an image search was given (an audit entry's filters: the others left out)."""
    return {k: v for k, v in fields.items() if v}


# -- the phrase vocabulary -----------------------------------------------------------------------------------
# stems: a word is the stem plus at most MAX_ENDING letters (Ukrainian / Russian inflections: червона, червоною)
MAX_ENDING = 3
COLOURS: dict[str, tuple[str, ...]] = {
    "black": ("black",), "white": ("white",), "red": ("red",), "blue": ("blue",), "navy": ("blue",),
    "green": ("green",), "grey": ("gray",), "gray": ("gray",), "purple": ("purple",), "violet": ("purple",),
    "yellow": ("yellow",), "brown": ("brown",), "pink": ("pink",), "dark": ("black", "blue"),
    "light": ("white", "gray"),
    # Ukrainian
    "чорн": ("black",), "біл": ("white",), "червон": ("red",), "син": ("blue",), "блакитн": ("blue",),
    "зелен": ("green",), "сір": ("gray",), "фіолетов": ("purple",), "жовт": ("yellow",), "коричнев": ("brown",),
    "рожев": ("pink",), "темн": ("black", "blue"), "світл": ("white", "gray"),
    # Russian
    "черн": ("black",), "чёрн": ("black",), "бел": ("white",), "красн": ("red",), "голуб": ("blue",),
    "зелён": ("green",), "сер": ("gray",), "фиолетов": ("purple",), "желт": ("yellow",), "жёлт": ("yellow",),
    "розов": ("pink",), "тёмн": ("black", "blue"), "светл": ("white", "gray"),
}  # fmt: skip
UPPER_GARMENTS = (
    "top", "shirt", "tshirt", "t-shirt", "jacket", "coat", "sweater", "hoodie", "blouse", "jumper", "cardigan",
    "футболк", "футболц", "сороч", "куртк", "куртц", "курт", "кофт", "светр", "піджак", "блуз", "пальт", "верх",
    "рубашк", "рубаш", "свитер", "пиджак", "толстовк", "худі", "худи",
)  # fmt: skip
LOWER_GARMENTS = (
    "trousers", "pants", "jeans", "bottoms", "leggings", "shorts", "skirt", "dress",
    "штан", "брюк", "джинс", "шорт", "спідниц", "юбк", "сукн", "плать", "низ",
)  # fmt: skip
SHORTS = ("shorts", "шорт")
SKIRTS = ("skirt", "dress", "спідниц", "юбк", "сукн", "плать")
WORDS: dict[str, tuple[str, object]] = {
    **{w: ("female", True) for w in ("woman", "women", "female", "girl", "lady", "жінк", "жінц", "дівчин",
                                     "женщин", "девушк", "девочк", "дівчинк")},
    **{w: ("female", False) for w in ("man", "men", "male", "guy", "boy", "чоловік", "чоловіч", "хлопц", "хлопець",
                                      "мужчин", "парен", "парн", "мальчик", "хлопчик")},
    **{w: ("age", "young") for w in ("child", "kid", "дитин", "ребен", "ребён")},
    **{w: ("age", "teenager") for w in ("teenager", "teen", "підліт", "підлітк", "подрост")},
    **{w: ("age", "adult") for w in ("adult", "доросл", "взросл")},
    **{w: ("age", "old") for w in ("old", "elderly", "стар", "літн", "пожил")},
    **{w: ("carry", "backpack") for w in ("backpack", "rucksack", "рюкзак")},
    **{w: ("carry", "bag") for w in ("bag", "сумк", "сумц")},
    **{w: ("carry", "handbag") for w in ("handbag", "purse", "сумочк", "сумочц")},
    **{w: ("hat", True) for w in ("hat", "cap", "капелюх", "шапк", "шапц", "кепк", "кепц", "шляп")},
    **{w: ("length", True) for w in ("long", "довг", "длинн")},
    **{w: ("length", False) for w in ("short", "коротк")},
    **{w: ("hair", None) for w in ("hair", "волосс", "волос")},
    **{w: ("sleeves", None) for w in ("sleeve", "sleeves", "sleeved", "рукав")},
    **{w: ("not", None) for w in ("without", "no", "без")},
}
FILLER = frozenset(
    "a an the with and in on wearing wears carrying carries who is was has had having person someone somebody "
    "dressed wore of or her his "
    "з із зі в у і й та на одягнен одягнут людин хтось що має мав мала несе ніс "
    "с со и во одет одета одетый человек кто-то кто который которая несёт несет"
    .split()
)  # fmt: skip
WORD_RE = re.compile(r"[^\W\d_]+(?:-[^\W\d_]+)*|\d+|[^\s\w,.;]", re.UNICODE)


def _lookup(word: str, table: Mapping[str, object] | tuple[str, ...] | frozenset[str]) -> str | None:
    """The vocabulary entry `word` is (exactly, or a stem of at least 3 letters plus at most MAX_ENDING)."""
    if word in table:
        return word
    if word.isascii() and word.endswith("s") and word[:-1] in table:  # jackets, backpacks
        return word[:-1]
    for stem in table:
        if len(stem) >= 3 and word.startswith(stem) and len(word) - len(stem) <= MAX_ENDING and not stem.isascii():
            return stem
    return None


@dataclass
class _State:
    fields: dict[str, object] = field(default_factory=dict)
    carrying: list[str] = field(default_factory=list)
    not_carrying: list[str] = field(default_factory=list)
    colours: list[str] = field(default_factory=list)  # said, waiting for their garment
    colour_words: list[str] = field(default_factory=list)
    length: bool | None = None
    negate: bool = False


def parse_description(text: str) -> Description:
    """A Description of a phrase; InputError naming every word it does not know (none is skipped silently)."""
    words = [w.lower() for w in WORD_RE.findall(text)]
    if not words:
        raise InputError("expected a description such as 'woman with a backpack, red top, dark trousers'")
    st, unknown = _State(), []
    for w in words:
        if _lookup(w, FILLER):
            continue
        if (c := _lookup(w, COLOURS)) is not None:
            st.colours += [x for x in COLOURS[c] if x not in st.colours]
            st.colour_words.append(w)
        elif (g := _lookup(w, UPPER_GARMENTS)) is not None:
            _garment(st, "upper", w)
            if st.length is not None and g in ("shirt", "tshirt", "t-shirt", "top", "футболк", "сороч", "рубашк"):
                st.fields["short_sleeves"], st.length = not st.length, None  # "short shirt": short sleeves
        elif (g := _lookup(w, LOWER_GARMENTS)) is not None:
            _garment(st, "lower", w)
            if g in SHORTS:
                st.fields["short_lower"] = True
            if g in SKIRTS:
                st.fields["skirt"] = True
            if st.length is not None and g not in SHORTS:
                st.fields["short_lower"], st.length = not st.length, None  # "long trousers"
        elif (k := _lookup(w, WORDS)) is not None:
            kind, value = WORDS[k]
            _word(st, kind, value, w)
        else:
            unknown.append(w)
    if unknown:
        raise InputError(f"unknown words in the description: {', '.join(repr(u) for u in dict.fromkeys(unknown))}")
    if st.colours:
        raise InputError(f"colour {' '.join(st.colour_words)!r} names no garment: say e.g. 'red top' or 'black trousers'")
    if st.length is not None:
        raise InputError("'long' / 'short' must be followed by hair, sleeves or a garment")
    if st.negate:
        raise InputError("'without' / 'no' must be followed by a backpack, bag, handbag or hat")
    return Description(carrying=tuple(dict.fromkeys(st.carrying)), not_carrying=tuple(dict.fromkeys(st.not_carrying)),
                       **st.fields)  # type: ignore[arg-type]  # fmt: skip


def _garment(st: _State, part: str, word: str) -> None:
    if st.colours:
        known = UPPER_COLORS if part == "upper" else LOWER_COLORS
        said = [c for c in st.colours if c in known]
        if not said:
            raise InputError(f"the attribute model knows no {part}-body colour {' '.join(st.colour_words)!r} "
                             f"(for {word!r}); it knows {', '.join(known)}")  # fmt: skip
        previous = st.fields.get(part)
        if previous is not None and previous != tuple(said):
            raise InputError(f"two different {part}-body colours in one description: {previous} and {said}")
        st.fields[part] = tuple(said)
        st.colours, st.colour_words = [], []
    if st.negate:
        raise InputError(f"'without' / 'no' before {word!r}: only bags and hats can be absent")


def _word(st: _State, kind: str, value: object, word: str) -> None:
    if kind == "not":
        st.negate = True
    elif kind == "length":
        st.length = bool(value)
    elif kind in ("hair", "sleeves"):
        if st.length is None:
            raise InputError(f"{word!r} needs 'long' or 'short' before it")
        name = "long_hair" if kind == "hair" else "short_sleeves"
        st.fields[name] = st.length if kind == "hair" else not st.length
        st.length = None
    elif kind == "carry":
        (st.not_carrying if st.negate else st.carrying).append(str(value))
        st.negate = False
    elif kind == "hat":
        st.fields["hat"] = not st.negate
        st.negate = False
    else:
        if kind in st.fields and st.fields[kind] != value:
            raise InputError(f"the description says two different {kind}s ({word!r})")
        st.fields[kind] = value
