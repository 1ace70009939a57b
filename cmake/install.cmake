# Install rules for plugin authors (the public header, pkg-config and CMake
# package files). Filled in by the plugins issue.
