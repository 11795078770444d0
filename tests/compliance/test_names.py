"""Name normalisation: scripts, legal forms, punctuation; idempotent."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gpulease.compliance.names import normalize_identifier, normalize_name


@pytest.mark.parametrize(
    ("name", "text", "core"),
    [
        ("Huawei Technologies Co., Ltd.", "huawei technology co ltd", "huawei technology"),
        ("HUAWEI TECHNOLOGIES COMPANY LIMITED", "huawei technology co ltd", "huawei technology"),
        ("Acme L.L.C.", "acme llc", "acme"),
        ("Acme Limited Liability Company", "acme llc", "acme"),
        ("Gulf Gate Spedition GmbH", "gulf gate spedition gmbh", "gulf gate spedition"),
        (
            "TNK Trading International S.A.",
            "tnk trading international sa",
            "tnk trading international",
        ),
        ("Open Joint Stock Company Tekhnodinamika", "ojsc tekhnodinamika", "tekhnodinamika"),
        ("PJSC Rosneft", "pjsc rosneft", "rosneft"),
        ("OOO Romashka", "ooo romashka", "romashka"),
        ("Obshchestvo s Ogranichennoy Otvetstvennostyu Romashka", "ooo romashka", "romashka"),
        ("Acme Holding AG", "acme holdings ag", "acme"),
        ("Acme Group Corporation", "acme group corp", "acme"),
        (
            "Acme Intl. Tech Inc",
            "acme international technology inc",
            "acme international technology",
        ),
        ("Group", "group", "group"),  # only a legal form: kept as the core
    ],
)
def test_legal_forms_and_abbreviations(name: str, text: str, core: str) -> None:
    norm = normalize_name(name)
    assert norm.text == text
    assert norm.core == core
    assert norm.tokens == frozenset(core.split())
    assert norm.compact == core.replace(" ", "")


@pytest.mark.parametrize(
    ("name", "text"),
    [
        ("200gpsaholdingsllc", "200gpsa holdings llc"),  # two forms run into the name
        ("ACMEHOLDINGS", "acme holdings"),
        ("Rosnefttrading LTD", "rosnefttrading ltd"),  # "trading" is no legal form
        ("Romashkagmbh", "romashka gmbh"),
        ("ooogazprom", "ooo gazprom"),
        ("Megacorp", "mega corp"),
        ("Acmeinc", "acme inc"),
        # words that end (or begin) like a form stay whole
        ("Zinc Bancorp Bancorporation", "zinc bancorp bancorporation"),
        ("Unlimited Accompany Tesco Mimosa", "unlimited accompany tesco mimosa"),
        ("Al Zaoura Network", "al zaoura network"),
    ],
)
def test_a_legal_form_run_into_a_word_is_split_off(name: str, text: str) -> None:
    assert normalize_name(name).text == text


def test_chinese_legal_forms_glossary_and_pinyin() -> None:
    assert normalize_name("华为技术有限公司").text == "huawei technology co ltd"
    assert (
        normalize_name("华为技术有限公司").core
        == normalize_name("Huawei Technologies Co., Ltd.").core
    )
    assert normalize_name("中兴通讯股份有限公司").text == "zhongxing communication co ltd"
    assert normalize_name("重庆银行").text == "chongqing bank"  # polyphone read from the phrase
    assert normalize_name("中国电子科技集团公司第十三研究所").core == (
        "china electronics technology 13th research institute"
    )
    assert (
        normalize_name("广东工业大学").core
        == normalize_name("Guangdong University of Technology").core
    )
    assert normalize_name("海康威视集团").tokens == frozenset({"haikangweishi"})


def test_other_scripts_are_transliterated() -> None:
    assert normalize_name("ПАО НК Роснефть").text == "pao nk rosneft"  # soft sign dropped
    assert normalize_name("ООО «Ромашка»").core == "romashka"
    assert normalize_name("Ελληνική Εταιρεία").text.isascii()


def test_a_legal_form_written_letter_by_letter_in_another_script_is_one() -> None:
    # Latin letters put one by one into Greek or Cyrillic come back as "gmvch", "llk"
    assert normalize_name("ειγχθ οκεαν γμβχ").core == "eigchth okean"
    assert normalize_name("ειγχθ οκεαν γμβχ").text == "eigchth okean gmbh"
    assert normalize_name("чеапшоп4ыоу ллк").text == "cheapshop4you llc"
    assert normalize_name("κομπανυ λιμιτεδ").text == "co ltd"
    # a name in Latin letters keeps such words: only a transliteration is read so
    assert normalize_name("Gmvch Llk").core == "gmvch llk"


def test_nfkc_full_width_and_case() -> None:
    assert normalize_name("ＨＵＡＷＥＩ　Ｔｅｃｈｎｏｌｏｇｉｅｓ").text == "huawei technology"
    assert normalize_name("STRASSE").text == normalize_name("straße").text


def test_punctuation_and_whitespace() -> None:
    assert normalize_name("  Al-Akhtar   Trust, (International)!  ").text == (
        "al akhtar trust international"
    )
    assert normalize_name("Gui\x92an New District").core == "guian new district"
    assert normalize_name("AT&T").text == "at and t"
    assert (
        normalize_name(
            "Sinobright Import and Export Company; and any successor, sub-unit, "
            "or subsidiary thereof"
        ).core
        == "sinobright import export"
    )
    assert normalize_name("Sino Bright").compact == normalize_name("Sinobright").compact
    assert normalize_name("").text == ""
    assert normalize_name("!!!").core == ""


def test_identifiers() -> None:
    assert normalize_identifier("CHE-267.936.404") == "CHE267936404"
    assert normalize_identifier("ｃ１２２７９０") == "C122790"


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=40))
def test_normalisation_is_idempotent(name: str) -> None:
    once = normalize_name(name)
    assert normalize_name(once.text).text == once.text
    assert normalize_name(once.text).core == once.core


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.sampled_from(
            [
                "huawei",
                "co",
                "ltd",
                "limited",
                "company",
                "joint",
                "stock",
                "import",
                "and",
                "export",
                "&",
                "imp",
                "exp",
                "any",
                "successor",
                "the",
                "int",
                "l.l.c.",
                "华为",
                "有限公司",
                "第十三",
                "ООО",
                "s.a.",
                "group",
            ]
        ),
        max_size=8,
    )
)
def test_normalisation_is_idempotent_on_name_like_text(words: list[str]) -> None:
    once = normalize_name(" ".join(words))
    assert normalize_name(once.text).text == once.text
