"""The layout of the command lines' ``--help``: sections of flags, each with its default,
its help text wrapped under it and the accepted values (launcher and evaluation alike).

No TensorFlow and no absl: ``--help`` must print in well under a second.
"""

import re
import textwrap

WIDTH = 96


def wrap(text, indent=6):
    """``text`` filled to the help's width, every line indented by ``indent`` spaces."""
    return textwrap.fill(text, WIDTH, initial_indent=" " * indent,
                         subsequent_indent=" " * indent, break_on_hyphens=False,
                         break_long_words=False)  # URLs and paths stay whole


def flag_lines(name, default, help_text, accepted=(), boolean=False):
    """The lines of one flag: ``--name  (default: x)``, its help, ``accepted: a, b``."""
    lines = [f"  --{'[no]' if boolean else ''}{name}  (default: {default})", wrap(help_text)]
    if accepted:
        lines.append(wrap(f"accepted: {', '.join(accepted)}"))
    return lines


_ROLE = re.compile(r":(?:mod|func|class|meth|data|attr):`~?([^`]+)`")


def plain(rst):
    """A docstring's reStructuredText as plain terminal text: ````x```` and ``:func:`x``` → x,
    a literal block's ``::`` → ``:``."""
    text = _ROLE.sub(r"\1", rst).replace("``", "")
    return re.sub(r"(\S)::$", r"\1:", text, flags=re.MULTILINE)
