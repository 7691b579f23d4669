"""nbgrader configuration of every single-user server of the class hub (hub/jupyterhub_config.py).

Students fetch and submit through the exchange; instructors release, collect and grade the
course in ~/lvm-course, built there with ``python tools/make_class_course.py --out ~/lvm-course``.
"""

import os

c = get_config()  # noqa: F821
c.CourseDirectory.course_id = "lvm"
c.Exchange.root = os.environ.get("LVM_HUB_EXCHANGE", "/srv/nbgrader/exchange")

user = os.environ.get("JUPYTERHUB_USER", "")
instructors = {u for u in os.environ.get("LVM_HUB_INSTRUCTORS", "").split(",") if u}
if user in instructors:
    course = os.path.join(os.path.expanduser("~"), "lvm-course")
    c.CourseDirectory.root = course
    if os.path.exists(os.path.join(course, "nbgrader_config.py")):
        load_subconfig(os.path.join(course, "nbgrader_config.py"))  # noqa: F821  (grading settings)
elif user:
    # all servers may run as one system user: a student is who the hub says
    c.CourseDirectory.student_id = user
