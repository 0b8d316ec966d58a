"""devenv's database names on the stack's Postgres: the template and the spare never collide, always fit."""

from __future__ import annotations

from devenv.db.marks import spare_mark, spare_name, template_mark, template_name


def test_template_and_spare_names_fit_postgres_identifier_limit_in_bytes() -> None:
    assert template_name("quotes") == "quotes__devenv_template"
    assert spare_name("quotes") == "quotes__devenv_spare"
    for db in ("x" * 46, "x" * 47, "x" * 63, "é" * 30, "数据库" * 7):
        names = {db, template_name(db), spare_name(db)}
        assert len(names) == 3  # never the app database itself (a cut name could be), never each other
        assert all(len(n.encode()) <= 63 for n in names - {db})
    assert template_name("x" * 46) == "x" * 46 + "__devenv_template"  # 63 bytes: fits as it is
    assert template_name("x" * 47) != template_name("x" * 48)  # shortened by a hash, not by cutting


def test_marks_carry_the_key_and_the_templates_oid() -> None:
    assert template_mark("k1") == "devenv-template:k1"
    assert spare_mark("k1", "16384") == "devenv-spare:k1:16384"
    assert spare_mark("k1", "16384") != spare_mark("k1", "16385")
