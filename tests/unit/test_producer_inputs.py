import pytest

from workfleet_producer.inputs import InputError, check_sizes, read_bodies


def test_arguments_and_file_lines_are_messages(tmp_path):
    path = tmp_path / "messages.txt"
    path.write_bytes(b"one.\n\n two..\n")
    assert read_bodies(["a"], str(path), count=2) == [b"a", b"a", b"one.", b"one.", b" two..", b" two.."]


def test_no_input_is_an_error():
    with pytest.raises(InputError, match="nothing to publish"):
        read_bodies([], None, 1)


def test_unreadable_file_is_an_error(tmp_path):
    with pytest.raises(InputError, match="cannot read"):
        read_bodies([], str(tmp_path / "missing"), 1)


def test_oversized_messages_are_named():
    with pytest.raises(InputError, match=r"1 message\(s\) over the 3-byte limit.*#2 \(4 bytes\)"):
        check_sizes([b"abc", b"abcd"], 3)
