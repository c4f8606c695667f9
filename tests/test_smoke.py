from tests.conftest import MODEL
from tests.fake_upstream import text


def test_hello(client, upstream):
    upstream.queue(text("Hello there friend"))
    r = client.responses.create(model=MODEL, input="hi")
    assert r.output_text == "Hello there friend"
    assert r.status == "completed"
    got = client.responses.retrieve(r.id)
    assert got.output_text == "Hello there friend"


def test_stream(client, upstream):
    upstream.queue(text("Hello there friend"))
    events = list(client.responses.create(model=MODEL, input="hi", stream=True))
    print([e.type for e in events])
    assert events[-1].type == "response.completed"
