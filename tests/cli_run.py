"""The command line run in-process, as the tests of what users type and read call it."""

from fastinit.cli import main


def run(capsys, *argv):
    """``(exit status, stdout, stderr)`` of ``fastinit *argv``; ``capsys`` is pytest's."""
    status = main(list(argv))
    out, err = capsys.readouterr()
    return status, out, err
