#include "cmd/app.hpp"

int main(int argc, char** argv) { return cmd::run(argc, argv); }
