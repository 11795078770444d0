def test_peek(cli) -> None:
    for who, args in [
        ("operator", ["lease", "list"]),
        ("operator", ["kyc", "list"]),
        ("officer", ["lists", "list"]),
        ("operator", ["users", "list"]),
        ("operator", ["job", "list"]),
        ("operator", ["end-uses"]),
    ]:
        r = cli(who, *args, check=False)
        print("$", who, " ".join(args), r.exit_code)
        print(r.stdout, r.stderr)
    assert 0
