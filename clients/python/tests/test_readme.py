"""The README's ten-line example works as written."""
import contextlib
import io
import os
import re
import unittest

from _support import SDK_KEY, URL, needs_server

README = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "README.md")


def readme_example() -> str:
    with open(README, encoding="utf-8") as f:
        text = f.read()
    section = text.split("## Ten lines", 1)[1]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


class ReadmeTest(unittest.TestCase):
    def test_the_example_is_ten_lines(self):
        self.assertLessEqual(len(readme_example().strip().splitlines()), 10)

    @needs_server
    def test_the_example_runs(self):
        out = io.StringIO()
        env = {"KEYWARD_URL": URL, "KEYWARD_SDK_KEY": SDK_KEY}
        saved = {k: os.environ.get(k) for k in env}
        os.environ.update(env)
        try:
            with contextlib.redirect_stdout(out):
                exec(compile(readme_example(), "README.md", "exec"), {"__name__": "readme"})
        finally:
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v
        self.assertEqual(out.getvalue(), "True VALID cus_42\n")


if __name__ == "__main__":
    unittest.main()
