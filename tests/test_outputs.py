"""An output's text, kept as it grows (domain/llm/outputs.py), is always
what rebuilding it from every stream's chunks gives, whatever order chunks,
repeats and retries arrive in and whenever it is asked for."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from newage.domain.llm.outputs import Output, stream_text
from newage.protocol.surrogates import repair

# ("begin",) a new stream; ("put", stream, index, text) a chunk of stream
# number ``stream`` (modulo those begun); ("text",) the text asked for
steps = st.lists(
    st.one_of(
        st.just(("begin",)),
        st.tuples(
            st.just("put"),
            st.integers(0, 5),
            st.integers(0, 6),
            st.text(alphabet="ab\ud83d\ude00", max_size=3),
        ),
        st.just(("text",)),
    ),
    max_size=60,
)


def rebuilt(output: Output) -> str:
    return repair("".join(stream_text(s) for s in output.streams.values()))


@settings(max_examples=400, deadline=None)
@given(steps)
def test_the_kept_text_is_the_rebuilt_text(script):
    output = Output("o1", "ext", None)
    begun: list[str] = []
    versions = [output.version]
    for step in script:
        if step[0] == "begin":
            begun.append(f"s{len(begun)}")
            output.begin(begun[-1])
        elif step[0] == "put" and begun:
            _, n, index, text = step
            stream_id = begun[n % len(begun)]
            output.put(stream_id, output.streams[stream_id], index, text)
            versions.append(output.version)
        elif step[0] == "text":
            assert output.text() == rebuilt(output)
    assert output.text() == rebuilt(output)
    assert versions == sorted(set(versions))  # every change counted


def test_chunks_in_order_are_appended_not_rebuilt():
    output = Output("o1", "ext", None)
    for token in range(3):
        output.begin(f"s{token}")
        for index in range(5):
            output.put(f"s{token}", output.streams[f"s{token}"], index, f"{token}{index} ")
            assert not output.rebuild
    assert output.text() == "".join(f"{t}{i} " for t in range(3) for i in range(5))
    output.put("s0", output.streams["s0"], 2, "retried ")
    assert output.rebuild
    assert output.text().startswith("00 01 retried 03 ")
