from orchestrator.services.draft_checks import (
    CHECKS,
    addresses,
    check_draft,
    copied_runs,
    customer_name,
    ends_complete,
    invented_details,
    missing_facts,
    refusals,
    repetitions,
)

NOTE = (
    "Standard card delivery is free and your card should arrive within 5 working days. "
    "If it hasn't arrived after 10 working days, report it under Cards > Card not arrived."
)
FACTS = ("5 working days", "10 working days", "Cards > Card not arrived")
TICKET = "Hi,\n\nI ordered my debit card eight days ago and nothing has come yet.\n\nThanks,\nPriya"
GOOD = f"Hi Priya,\n\nThank you for telling us your card is still on its way. {NOTE}"


def test_a_good_draft_passes_every_check():
    result = check_draft(GOOD, note=NOTE, key_facts=FACTS, ticket=TICKET, name="Priya")
    assert result.passed, result.failures


def test_the_name_comes_from_the_sign_off_only():
    assert customer_name(TICKET) == "Priya"
    assert customer_name("Hello,\n\nWhere is it?\n\nKind regards,\nElena Rossi") == "Elena"
    assert customer_name("Hi, where is my card?") is None
    assert customer_name("Thanks,\nplease hurry up with it") is None
    assert addresses("Hi Priya,\n\nText.", "Priya") and not addresses("Hello,\n\nPriya.", "Priya")
    assert addresses("Hello,\n\nText.", None)


def test_each_check_catches_its_fault():
    assert missing_facts("within 5 WORKING  days", FACTS) == list(FACTS[1:])
    assert invented_details("It takes 3 days; see Cards > Track delivery.", NOTE) == [
        "3",
        "Cards > Track",
    ]
    assert invented_details("Allow two weeks and pay £4.", NOTE) == ["£4", "two weeks"]
    assert invented_details("Within 5 working days, under Cards > Card not arrived.", NOTE) == []
    assert refusals("As an AI, I'm unable to help.") == ["As an AI", "I'm unable to"]
    assert refusals("We will help you today.") == []
    assert repetitions("We are sorry. We are sorry.") == ["we are sorry."]
    assert repetitions("a b c d x a b c d y a b c d") == ["a b c d"]
    assert repetitions("One sentence here. Another one there.") == []
    copied = "You said: I ordered my debit card eight days ago."
    assert copied_runs(copied, TICKET) == ["i ordered my debit card eight days ago"]
    assert copied_runs("Your card is on its way to you.", TICKET) == []
    assert ends_complete("Thank you.") and not ends_complete("Thank you for")


def test_a_failing_draft_names_each_failed_check():
    bad = (
        "Hello,\n\nAs an AI I cannot help. It takes 3 days. It takes 3 days. "
        "I ordered my debit card eight days ago and"
    )
    result = check_draft(bad, note=NOTE, key_facts=FACTS, ticket=TICKET, name="Priya")
    assert not result.passed
    assert set(result.failures) == {
        "facts",
        "no_invention",
        "no_refusal",
        "no_repetition",
        "no_copy",
        "complete",
        "name",
    }
    assert set(result.failures) <= set(CHECKS)
