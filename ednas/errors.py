"""Project exceptions: every user error is an EdnasError whose message is one line that
says what was wrong and how to fix it. The CLI prints it without a traceback."""


class EdnasError(Exception):
    """Base class for errors caused by user input (paths, recipes, models, budgets)."""


class ConfigError(EdnasError):
    """A recipe, architecture or search-space file is malformed (unknown key, bad value)."""


class InputError(EdnasError):
    """A file given on the command line is missing, unreadable or of the wrong kind."""


class ModelMismatchError(EdnasError):
    """Weights (ONNX or checkpoint) do not fit the architecture they are loaded into."""


class DataError(EdnasError):
    """A dataset (images or annotations) is malformed."""
