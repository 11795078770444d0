"""List importers on the real lists gpulease ships (``gpulease.data``, xz-compressed) and on
broken copies of them."""

from __future__ import annotations

import gzip
import hashlib
from pathlib import Path

import pytest

from gpulease.compliance.lists import (
    ListFormatError,
    diff,
    load,
    normalize_country,
    snapshot_from_bytes,
)
from gpulease.compliance.lists.bis import parse_bis_dpl
from gpulease.compliance.lists.csl import parse_csl_csv, parse_csl_json
from gpulease.compliance.lists.ofac import parse_ofac_sdn
from gpulease.compliance.lists.opensanctions import parse_opensanctions
from gpulease.compliance.model import Address, ListEntry, PartyKind
from gpulease.data import read_bytes, shipped_lists

LISTS = shipped_lists()
FIXTURES = Path(__file__).resolve().parent / "fixtures"
CSL_CURRENT = LISTS / "csl-consolidated-sample.csv.xz"
CSL_LEGACY = LISTS / "csl-legacy-sample.csv.xz"
OFAC = LISTS / "ofac-sdn"
BIS = LISTS / "bis-denied-persons.tsv.xz"


def by_id(entries: tuple[ListEntry, ...], entry_id: str) -> ListEntry:
    (entry,) = [e for e in entries if e.entry_id == entry_id]
    return entry


def by_name(entries: tuple[ListEntry, ...], name: str) -> ListEntry:
    (entry,) = [e for e in entries if e.name == name]
    return entry


@pytest.fixture(scope="module")
def ofac() -> tuple[ListEntry, ...]:
    return parse_ofac_sdn(*(read_bytes(OFAC / f"{n}.csv.xz") for n in ("sdn", "alt", "add")))


# --- CSL -------------------------------------------------------------------------------------


def test_csl_current_layout() -> None:
    entries = parse_csl_csv(read_bytes(CSL_CURRENT), file=CSL_CURRENT.name)
    assert len(entries) == 13
    rim = by_id(entries, "52291")
    assert rim.name == "RIM, Ryong Nam"
    assert rim.kind is PartyKind.PERSON
    assert rim.countries == ("CN", "KP")
    assert rim.identifiers == (("Passport", "836238033"),)  # "Gender, Male" is no identifier
    assert rim.list_name == "Specially Designated Nationals (SDN) - Treasury Department"
    tnk = by_id(entries, "28603")
    assert tnk.programs == ("VENEZUELA-EO13850", "UKRAINE-EO13662")
    assert ("Business Registration Number", "CH-660.0.559.011-2") in tnk.identifiers
    cetc = by_name(
        entries, "China Electronics Technology Group Corporation 13th Research Institute (CETC 13)"
    )
    assert cetc.entry_id == "99ed1b052fdb09695fae1ba87516d8a0882b0df04652e07aeb5ce7be"
    assert "CETC Research Institute 13" in cetc.aliases  # the CSL's "; and " artefact dropped
    assert cetc.kind is PartyKind.UNKNOWN
    atlas = by_name(entries, "Atlas Sanatgaran")
    assert atlas.addresses == (
        Address(street="Komitas 26/114, Yerevan", city="Armenia", country="AM"),
    )
    assert atlas.countries == ("AM",)


def test_csl_legacy_layout() -> None:
    entries = parse_csl_csv(read_bytes(CSL_LEGACY), file=CSL_LEGACY.name)
    assert len(entries) == 115
    canada = by_id(entries, "8124")
    assert canada.aliases == ("CARIBE SOL", "HAVANTUR CANADA INC.")
    assert canada.countries == ("CA",)
    tekh = by_id(entries, "18774")
    # legacy ids read "number, type"
    assert ("Tax ID No.", "7719265496") in tekh.identifiers
    assert ("Registration ID", "1037719005873") in tekh.identifiers
    assert all(kind != "Email Address" for kind, _ in tekh.identifiers)
    psa = by_id(entries, "20264")
    assert psa.identifiers == (("Tax ID No.", "80-0890696"),)  # "country, number, type"
    # lists that publish no id get a digest id, stable across imports
    el = by_name(entries, "32 Group China Ltd.")
    assert len(el.entry_id) == 16
    again = parse_csl_csv(read_bytes(CSL_LEGACY))
    assert by_name(again, "32 Group China Ltd.").entry_id == el.entry_id
    assert len({e.entry_id for e in entries}) == len(entries)


def test_csl_json_matches_the_csv_it_came_from() -> None:
    entries = parse_csl_json((FIXTURES / "csl-sample.json").read_bytes(), file="csl-sample.json")
    assert len(entries) == 5
    csv_entries = {e.entry_id: e for e in parse_csl_csv(read_bytes(CSL_CURRENT))}
    for entry in entries:
        twin = csv_entries[entry.entry_id]
        assert (entry.name, entry.aliases, entry.kind, entry.programs) == (
            twin.name,
            twin.aliases,
            twin.kind,
            twin.programs,
        )
        assert entry.countries == twin.countries
        assert entry.identifiers == twin.identifiers


# --- OFAC SDN --------------------------------------------------------------------------------


def test_ofac_counts_and_types(ofac: tuple[ListEntry, ...]) -> None:
    assert len(ofac) == 8976
    assert sum(len(e.aliases) for e in ofac) > 11_800
    kinds = {k: sum(1 for e in ofac if e.kind is k) for k in PartyKind}
    assert kinds[PartyKind.PERSON] == 4620
    assert kinds[PartyKind.ORGANIZATION] == 3673  # SDN_Type -0-
    assert kinds[PartyKind.VESSEL] == 406
    assert kinds[PartyKind.AIRCRAFT] == 277


def test_ofac_aliases_addresses_and_empty_markers(ofac: tuple[ListEntry, ...]) -> None:
    bnc = by_id(ofac, "306")
    assert bnc.name == "BANCO NACIONAL DE CUBA"
    assert bnc.aliases == ("NATIONAL BANK OF CUBA",)
    assert bnc.programs == ("CUBA",)
    assert bnc.addresses[0] == Address(
        street="Zweierstrasse 35", city="Zurich CH-8022", country="CH"
    )
    aero = by_id(ofac, "36")
    assert aero.addresses == (Address(street="", city="Havana", country="CU"),)  # "-0- " street
    assert aero.remarks == ""
    assert all("-0-" not in n for e in ofac for n in e.names)
    vessel = by_name(ofac, "ARTAVIL")
    assert vessel.kind is PartyKind.VESSEL
    assert ("Vessel Registration Identification IMO", "9187629") in vessel.identifiers
    assert ("Call Sign", "T2EU4") in vessel.identifiers
    assert "IR" in vessel.countries  # the vessel's flag
    djibo = by_id(ofac, "32391")
    assert "NE" in djibo.countries  # "nationality Niger" in the remarks


def test_ofac_multi_program_field(ofac: tuple[ListEntry, ...]) -> None:
    multi = [e for e in ofac if len(e.programs) > 1]
    assert multi
    assert all("]" not in p and "[" not in p for e in multi for p in e.programs)


# --- BIS DPL and OpenSanctions --------------------------------------------------------------


def test_bis_denied_persons() -> None:
    entries = parse_bis_dpl(read_bytes(BIS), file=BIS.name)
    assert len(entries) == 579  # 581 rows, two exact repeats
    ash = [e for e in entries if e.name == "I. ASH"]
    assert ash
    first = ash[0]
    assert first.start_date == "2003-06-19"
    assert first.addresses[0].city == "SEAGOVILLE"
    assert first.addresses[0].region == "TX"
    assert first.countries == ("US",)
    assert by_name(entries, "AARON ABRAHAM VILLA").countries == ()


def test_opensanctions_entities() -> None:
    data = (FIXTURES / "opensanctions-sample.ftm.jsonl").read_bytes()
    entries = parse_opensanctions(data, file="sample.jsonl")
    assert [e.entry_id for e in entries] == [
        "fx-huawei-tech",
        "fx-rim-ryong-nam",
        "fx-rosneft-trade",
        "fx-rosneft",
        "fx-artavil",
    ]  # the Sanction line is no party
    huawei = entries[0]
    assert huawei.name == "Huawei Technologies Co., Ltd."
    assert huawei.aliases == ("华为技术有限公司", "Huawei")
    assert huawei.countries == ("CN",)
    assert huawei.identifiers == (("registrationNumber", "FX-REG-0001"),)
    assert entries[1].kind is PartyKind.PERSON
    assert entries[4].kind is PartyKind.VESSEL
    assert entries[3].aliases == ("ПАО НК Роснефть", "Rosneft")


# --- refusals ------------------------------------------------------------------------------


def refused(excinfo: pytest.ExceptionInfo[ListFormatError]) -> ListFormatError:
    err = excinfo.value
    assert err.code == "invalid_list"
    assert err.details["file"] == err.file
    return err


def test_csv_row_with_wrong_column_count_is_refused() -> None:
    lines = read_bytes(CSL_CURRENT).splitlines(keepends=True)
    lines[5] = lines[5].replace(b',"",', b",", 1)  # one empty field dropped
    with pytest.raises(ListFormatError) as excinfo:
        parse_csl_csv(b"".join(lines), file="broken.csv")
    err = refused(excinfo)
    assert err.line == 6
    assert "expected 29 columns, got 28" in err.message
    assert err.message.startswith("broken.csv, line 6:")


def test_truncated_csv_is_refused() -> None:
    data = read_bytes(CSL_LEGACY)
    cut = data[: data.index(b"HAVANTUR") + 3]  # ends inside a quoted field
    with pytest.raises(ListFormatError) as excinfo:
        parse_csl_csv(cut, file="cut.csv")
    err = refused(excinfo)
    assert err.line == 6
    assert err.reason == "expected 28 columns, got 22"
    inside_quotes = data[: data.index(b"Sherbrooke")]
    with pytest.raises(ListFormatError) as excinfo:
        parse_csl_csv(inside_quotes, file="cut.csv")
    err = refused(excinfo)
    assert "unexpected end of data" in err.reason


def test_unknown_csv_header_is_refused() -> None:
    with pytest.raises(ListFormatError) as excinfo:
        parse_csl_csv(b"name,address\nfoo,bar\n", file="x.csv")
    assert refused(excinfo).line == 1


def test_ofac_truncated_row_and_orphan_alias_are_refused() -> None:
    sdn = read_bytes(OFAC / "sdn.csv.xz")
    alt = read_bytes(OFAC / "alt.csv.xz")
    add = read_bytes(OFAC / "add.csv.xz")
    lines = sdn.splitlines(keepends=True)
    lines[2] = b'306,"BANCO NACIONAL DE CUBA",-0- ,"CUBA"\r\n'
    with pytest.raises(ListFormatError) as excinfo:
        parse_ofac_sdn(b"".join(lines), alt, add)
    err = refused(excinfo)
    assert (err.file, err.line) == ("sdn.csv", 3)
    assert "expected 12 fields, got 4" in err.reason
    orphan = alt.rstrip(b"\x1a") + b'99999999,1,"aka","NOBODY",-0- \r\n'
    with pytest.raises(ListFormatError) as excinfo:
        parse_ofac_sdn(sdn, orphan, add)
    err = refused(excinfo)
    assert err.file == "alt.csv"
    assert "unknown ent_num 99999999" in err.reason


def test_bad_json_is_refused_with_its_line() -> None:
    with pytest.raises(ListFormatError) as excinfo:
        parse_csl_json(b'{"results": [\n{"name": "x",}\n]}', file="bad.json")
    err = refused(excinfo)
    assert err.line == 2
    assert "invalid JSON" in err.reason
    good = (FIXTURES / "opensanctions-sample.ftm.jsonl").read_bytes().splitlines()
    broken = b"\n".join([*good[:2], good[2][:-5], *good[3:]])
    with pytest.raises(ListFormatError) as excinfo:
        parse_opensanctions(broken, file="os.jsonl")
    assert refused(excinfo).line == 3


def test_bis_bad_date_is_refused() -> None:
    data = read_bytes(BIS).replace(b'"06/19/2003"', b'"2003-19-06"', 1)
    with pytest.raises(ListFormatError) as excinfo:
        parse_bis_dpl(data, file="dpl.tsv")
    err = refused(excinfo)
    assert err.line == 2
    assert "MM/DD/YYYY" in err.reason


# --- snapshots and diffs -------------------------------------------------------------------


def test_load_every_format_with_stable_checksum() -> None:
    cases = [
        (CSL_CURRENT, "csl-csv", 13),
        (CSL_LEGACY, "csl-csv", 115),
        (FIXTURES / "csl-sample.json", "csl-json", 5),
        (OFAC, "ofac-sdn", 8976),
        (BIS, "bis-dpl", 579),
        (FIXTURES / "opensanctions-sample.ftm.jsonl", "opensanctions", 5),
    ]
    checksums = set()
    for path, fmt, n in cases:
        snap = load(path, fmt, version_label="v1", published="2026-11-28")
        assert snap.counts["entries"] == n == len(snap.entries)
        assert snap.counts["aliases"] == sum(len(e.aliases) for e in snap.entries)
        assert (snap.version_label, snap.published) == ("v1", "2026-11-28")
        checksums.add(snap.checksum)
    assert len(checksums) == len(cases)
    again = load(CSL_LEGACY, "csl-csv")
    assert again.checksum == snapshot_from_bytes("csl-csv", {"x": read_bytes(CSL_LEGACY)}).checksum
    assert again.version_label == again.checksum[:12]
    assert again.source == "csl"
    ofac_files = {f"{n}.csv": read_bytes(OFAC / f"{n}.csv.xz") for n in ("sdn", "alt", "add")}
    digest = hashlib.sha256()
    for name in ("sdn.csv", "alt.csv", "add.csv"):
        digest.update(name.encode() + b"\0" + ofac_files[name])
    assert digest.hexdigest() in checksums  # documented: the three files in order, named


def test_load_refuses_unknown_format_and_missing_files(tmp_path: Path) -> None:
    with pytest.raises(ListFormatError):
        load(CSL_CURRENT, "xml")
    with pytest.raises(ListFormatError, match="missing file"):
        load(tmp_path, "ofac-sdn")
    with pytest.raises(ListFormatError, match="cannot read: no such file or folder"):
        load(tmp_path / "nope.csv", "csl-csv")
    with pytest.raises(ListFormatError, match="nope: cannot read: no such file or folder"):
        load(tmp_path / "nope", "ofac-sdn")  # names the folder, not a file inside it


def test_diff_added_removed_changed() -> None:
    data = read_bytes(CSL_CURRENT)
    old = snapshot_from_bytes("csl-csv", {"a.csv": data})
    lines = data.rstrip(b"\n").split(b"\n")
    lines = [ln + b"\n" for ln in lines]
    removed_line = lines.pop(2)  # Atlas Sanatgaran
    lines = [ln.replace(b"TNK TRADE LIMITED", b"TNK TRADING LIMITED") for ln in lines]
    lines.append(
        b'"new-1","Entity List (EL) - Bureau of Industry and Security","","","","Example Co",'
        + b'"",' * 22
        + b'""\n'
    )
    new = snapshot_from_bytes("csl-csv", {"b.csv": b"".join(lines)})
    assert new.checksum != old.checksum
    delta = diff(old, new)
    assert [e.entry_id for e in delta.added] == ["new-1"]
    assert [e.name for e in delta.removed] == ["Atlas Sanatgaran"]
    assert b"Atlas" in removed_line
    (change,) = delta.changed
    assert change.new.entry_id == "18300"
    assert change.fields == ("aliases",)
    assert diff(old, old).empty


def test_json_record_refused_with_its_line() -> None:
    data = (FIXTURES / "csl-sample.json").read_bytes()
    text = data.decode()
    broken = text.replace('"name": "RIM, Ryong Nam"', '"name": ""', 1)
    record_line = text[: text.index('"name": "RIM, Ryong Nam"')].rfind("{")
    expected_line = text.count("\n", 0, record_line) + 1
    with pytest.raises(ListFormatError) as excinfo:
        parse_csl_json(broken.encode(), file="csl.json")
    err = refused(excinfo)
    assert err.line == expected_line
    assert err.details["record"] == 1
    assert "missing or empty name" in err.reason
    with pytest.raises(ListFormatError, match="results"):
        parse_csl_json(b'{"items": []}', file="csl.json")


def test_csv_record_id_reused_for_another_record_is_refused() -> None:
    lines = read_bytes(CSL_CURRENT).rstrip(b"\n").split(b"\n")
    twin = lines[4].replace(b"Mohammed ABU JHEISHEH", b"Somebody Else")  # same _id 9673
    with pytest.raises(ListFormatError) as excinfo:
        parse_csl_csv(b"\n".join([*lines, twin]) + b"\n", file="dup.csv")
    err = refused(excinfo)
    assert err.line == 15
    assert "'9673' already used on line 5" in err.reason


@pytest.mark.parametrize(
    ("given", "code"),
    [
        ("China", "CN"),
        ("Korea, North", "KP"),
        ("Korea South", "KR"),
        ("Burma", "MM"),
        ("United Arab Emirates", "AE"),
        ("Hong Kong", "HK"),
        ("ru", "RU"),
        ("-0- ", ""),
        ("undetermined", ""),
        ("Atlantis", "Atlantis"),  # unknown names are kept as given
    ],
)
def test_country_names_to_iso(given: str, code: str) -> None:
    assert normalize_country(given) == code


def test_undecodable_bytes_are_refused_with_their_line() -> None:
    data = read_bytes(CSL_CURRENT).replace(b"Atlas", b"\xffAtlas", 1)
    with pytest.raises(ListFormatError) as excinfo:
        parse_csl_csv(data, file="x.csv")
    err = refused(excinfo)
    assert err.line == 3
    assert "not UTF-8 text" in err.reason
    sdn = read_bytes(OFAC / "sdn.csv.xz")
    latin = sdn.replace(b"AEROCARIBBEAN", b"AEROCARIBB\xc9AN", 1)  # cp1252 legacy files read
    entries = parse_ofac_sdn(latin, b"", b"")
    assert entries[0].name == "AEROCARIBBÉAN AIRLINES"
    with pytest.raises(ListFormatError) as excinfo:
        parse_ofac_sdn(sdn.replace(b"AEROCARIBBEAN", b"AERO\x81", 1), b"", b"")
    assert refused(excinfo).line == 1


# --- compressed files ---------------------------------------------------------------------


def test_compressed_and_plain_files_give_the_same_snapshot(tmp_path: Path) -> None:
    """A list reads the same from .xz, .gz or plain bytes: same entries, same checksum (of
    the decompressed bytes), so re-importing a decompressed copy is the same snapshot."""
    plain = tmp_path / "bis.tsv"
    plain.write_bytes(read_bytes(BIS))
    gz = tmp_path / "bis.tsv.gz"
    gz.write_bytes(gzip.compress(plain.read_bytes()))
    snaps = [load(p, "bis-dpl") for p in (BIS, plain, gz)]
    assert len({s.checksum for s in snaps}) == 1
    assert snaps[0].entries == snaps[1].entries == snaps[2].entries
    folder = tmp_path / "ofac"
    folder.mkdir()
    for n in ("sdn", "alt", "add"):  # a folder may mix plain and compressed files
        target = folder / (f"{n}.csv" if n == "alt" else f"{n}.csv.gz")
        data = read_bytes(OFAC / f"{n}.csv.xz")
        target.write_bytes(data if n == "alt" else gzip.compress(data))
    assert load(folder, "ofac-sdn").checksum == load(OFAC, "ofac-sdn").checksum


def test_a_damaged_compressed_file_is_refused_whole(tmp_path: Path) -> None:
    cut = tmp_path / "csl.csv.xz"
    cut.write_bytes(CSL_LEGACY.read_bytes()[:-40])  # truncated stream
    with pytest.raises(ListFormatError, match=r"cannot read: not a valid \.xz file"):
        load(cut, "csl-csv")
    fake = tmp_path / "csl.csv.gz"
    fake.write_bytes(read_bytes(CSL_LEGACY))  # plain text named .gz
    with pytest.raises(ListFormatError, match=r"not a valid \.gz file"):
        load(fake, "csl-csv")
