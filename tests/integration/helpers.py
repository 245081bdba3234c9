"""Old import path of support/http.py + support/oci.py, kept for tests written against it
(lifecycle/test_gc_race.py and tests in flight on other branches); new code imports those."""

from support.http import *
from support.oci import *
