// The scenarios and command line shared by the webtransport-go peer clients (../v0.11, ../v0.12).
// No dependencies: each version's module adapts its own webtransport.Session to echo.Session.
module wtpeer/echo

go 1.25.0
