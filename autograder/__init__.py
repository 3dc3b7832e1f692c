"""backprop-lab's autograder: autograd references, checks, grading engine and CLI.

Layout:
    tolerances.py   every numerical tolerance, with the reason for it
    parts.py        what a gradable part is: its cases, its reference, its outputs
    diagnosis.py    the mistakes the grader names, and the known wrong answers it computes
    compare.py      student tensor vs reference tensor -> a finding in plain words
    grading.py      run a student's function on a part's cases and judge the results
    figures.py      SVG figures: loss curves, error maps, bars
    notebook.py     the `check` function the notebooks' test cells call
    feedback.py     what nbgrader's generate_feedback runs before rendering a notebook
    messages.py     an error as its message alone, wrapped to the page
    report.py       the class report of a graded assignment (HTML with plots, CSV)
    manual_backprop.py  autograd unavailable while a manual-backprop part runs
    engine/         the sandboxed grading engine: isolation, child, protocol, results
    assignments/    one module per assignment: seeded inputs and autograd references
    course.py       the nbgrader course: release, exchange, collect, autograde, export
    submissions.py  build student notebooks from the release (demo and tests)
    demo.py         a simulated class going through the whole nbgrader cycle
"""
