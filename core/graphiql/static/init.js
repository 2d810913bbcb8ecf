// Baton's GraphiQL start-up, a file of its own so that the page runs under a CSP without
// inline scripts. Put "Authorization": "Bearer <token>" in the Headers tab.
(function () {
  "use strict";
  var url = window.location.href.split("?")[0];
  var fetcher = GraphiQL.createFetcher({ url: url });
  var root = ReactDOM.createRoot(document.getElementById("graphiql"));
  root.render(
    React.createElement(GraphiQL, {
      fetcher: fetcher,
      defaultEditorToolsVisibility: true,
      isHeadersEditorEnabled: true,
      shouldPersistHeaders: true,
      defaultHeaders: '{\n  "Authorization": "Bearer <token>"\n}',
    }),
  );
})();
